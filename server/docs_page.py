"""GET /docs: a self-contained page listing every endpoint from our own OpenAPI document.

No JavaScript or CDN: it must work on an offline laptop at a legal aid office. The full
contract is docs/protocol.md and /openapi.json; this page is the quick map.
"""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "code{background:#f3f3f3;padding:0 .2rem}.m{font-weight:bold;display:inline-block;"
    "width:4rem}li{margin:.3rem 0}section{margin-bottom:1.5rem}"
)


def _operation_line(method: str, path: str, op: dict[str, Any]) -> str:
    auth = " (bearer token)" if op.get("security") else ""
    statuses = ", ".join(sorted(code for code in op.get("responses", {}) if code != "default"))
    return (f"<li><span class=m>{escape(method.upper())}</span> <code>{escape(path)}</code>"
            f" &mdash; {escape(op.get('summary', ''))}{escape(auth)}"
            f" <small>[{escape(statuses)}]</small></li>")


def render_docs(spec: dict[str, Any]) -> str:
    by_tag: dict[str, list[str]] = {}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation_line(method, path, op))
    sections = "".join(
        f"<section><h2>{escape(tag)}</h2><ul>{''.join(lines)}</ul></section>"
        for tag, lines in by_tag.items()
    )
    info = spec.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}")
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        "<p>Every failure answers <code>{\"error\": {\"code\", \"message\"}}</code>. "
        "Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. "
        "Exact formats: docs/protocol.md.</p>"
        f"{sections}</body></html>"
    )
