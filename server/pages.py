"""Human pages that links point people to: `/` (what this server is) and, until the contact web
page lands, a `/contact` that says how to open what was released.

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
        "<ul><li><a href='/contact'>Trusted contacts</a>: open what was released to you</li>"
        "<li><a href='/docs'>API documentation</a> for app developers</li></ul>"))


def contact() -> Response:
    return _page("Safehold for trusted contacts", (
        "<p>If you received a Safehold notification, a recording may have been released to "
        "you. Only your own key can open it, so it is never shown on a web page without it.</p>"
        "<p>Open it in the Safehold contact app, or on a computer with your key run:</p>"
        "<p><code>safehold contact list</code> then "
        "<code>safehold fetch ENCOUNTER -o BUNDLE</code> and "
        "<code>safehold decrypt BUNDLE -i IDENTITY -o OUTDIR</code>.</p>"
        "<p><a href='/'>About this server</a></p>"))


def register_pages(app: Flask, server_name: str) -> None:
    app.add_url_rule("/", "landing", lambda: landing(server_name))
    # Placeholder: the trusted contacts' web page replaces this route.
    app.add_url_rule("/contact", "contact_page", contact)
