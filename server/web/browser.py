"""The browser pages (`GET /contact`, `GET /record`) and their built files (`GET /web/<file>`).

They are built by esbuild into web/dist (committed, checked against a fresh build by
tests/test_web_build.py) and served exactly as they are: no templating, no CDN. The page's
Content-Security-Policy allows only this origin, so nothing but our own code runs beside the
contact's keys, and no-referrer keeps even the path out of other sites' logs.

The recorder (/record) is an installable web app: its manifest (`/web/record.webmanifest`,
served as application/manifest+json) and its service worker (`/web/record-sw.js`). A worker
may only control pages under its own folder (/web/) unless the server allows more: the
`Service-Worker-Allowed: /record` header on that one file lets it take the scope /record (and no
other: it cannot be registered to control /contact or the whole origin). The CSP
names `worker-src 'self'` and `manifest-src 'self'` (same origin only) rather than relying on
the fall-back to default-src.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, send_from_directory

WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self'; "
                               "img-src 'self' blob: data:; media-src 'self' blob:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                               "form-action 'self'; worker-src 'self'; manifest-src 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
SERVICE_WORKERS = {"record-sw.js"}  # built files that are service workers (web/build.mjs)
MEDIA_TYPES = {".webmanifest": "application/manifest+json", ".svg": "image/svg+xml",
               ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

web = Blueprint("web_pages", __name__)


def _with_headers(response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)
    return response


@web.get("/contact")
def contact_page() -> Response:
    return _with_headers(send_from_directory(WEB_DIST, "contact.html", mimetype="text/html"))


@web.get("/record")
def record_page() -> Response:
    return _with_headers(send_from_directory(WEB_DIST, "record.html", mimetype="text/html"))


@web.get("/web/<path:name>")
def built_file(name: str) -> Response:
    # send_from_directory refuses paths outside WEB_DIST (404), so only built files are served.
    mimetype = MEDIA_TYPES.get(Path(name).suffix)  # not left to the host's mime.types
    response = _with_headers(send_from_directory(WEB_DIST, name, mimetype=mimetype))
    if name in SERVICE_WORKERS:
        response.headers["Service-Worker-Allowed"] = "/record"
    return response


def register_web_pages(app: Flask) -> None:
    app.register_blueprint(web)
