"""The landing page `/` (what this server is); `/contact` is the contacts' web page
(server/web/browser.py).

Notification e-mails link here rather than to an API URL, which a browser would show as a raw
401 JSON envelope. No JavaScript, no outside assets: they work offline.
"""

from __future__ import annotations

from html import escape

from flask import Flask, Response

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
          "line-height:1.5}code{background:#f3f3f3;padding:0 .2rem}")


def _page(title: str, body: str) -> Response:
    html = (f"<!doctype html><html lang=en><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_STYLE}</style><body>"
            f"<h1>{escape(title)}</h1>{body}</body></html>")
    return Response(html, mimetype="text/html")


def landing(server_name: str) -> Response:
    return _page("Safehold", (
        f"<p>This is the Safehold server <code>{escape(server_name)}</code>. It keeps encrypted "
        "recordings of police and immigration encounters for the people who made them, and "
        "releases them only to the trusted contacts they chose. It cannot read them.</p>"
        "<ul><li><a href='/contact'>Trusted contacts</a>: join with an invitation and open "
        "what was released to you, in your browser</li>"
        "<li><a href='/docs'>API documentation</a> for app developers</li></ul>"))


def register_pages(app: Flask, server_name: str) -> None:
    app.add_url_rule("/", "landing", lambda: landing(server_name))
