"""One log format for the API, its access lines, gunicorn and the worker: a JSON object a line.

    {"time": "2026-11-28T03:30:01.123Z", "level": "INFO", "logger": "safehold.access",
     "message": "PUT /v1/encounters/…/chunks/3 201", "request_id": "5f0c…", ...}

Every line written while a request is served carries its request id (the client's
`X-Request-Id` when it is a sane token, else a fresh one; echoed in the response), so an
operator can pull every line of one request out of the stream. Lines outside a request (start
up, the worker) have `"request_id": null`. SAFEHOLD_LOG_FORMAT=text gives the old
human-readable lines instead.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
LOG_FORMAT_ENV = "SAFEHOLD_LOG_FORMAT"  # json (default) | text
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# LogRecord attributes that are not extra fields a caller attached.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "taskName"}


def current_request_id() -> str | None:
    if not has_request_context():
        return None
    found = getattr(g, "request_id", None)
    if found is None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        found = offered if _SANE_ID.fullmatch(offered) else uuid.uuid4().hex
        g.request_id = found
    return str(found)


class RequestIdFilter(logging.Filter):
    """Puts the request id (or None) on every record, whichever logger made it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        # ASCII only: a path may hold U+2028 or \x85, which log readers split lines on.
        return json.dumps(line, default=str, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """The human-readable lines: `… [request id]: message`, `[-]` outside a request."""

    def format(self, record: logging.LogRecord) -> str:
        shown = getattr(record, "request_id", None) or "-"
        return super().format(logging.makeLogRecord({**vars(record), "request_id": shown}))


def make_formatter(kind: str) -> logging.Formatter:
    return TextFormatter(TEXT_FORMAT) if kind == "text" else JsonFormatter()


def log_format(environ: Mapping[str, str]) -> str:
    return "text" if environ.get(LOG_FORMAT_ENV, "").strip().lower() == "text" else "json"


def configure_logging(kind: str = "json", level: int = logging.INFO) -> None:
    """Root logging to stderr in the chosen format (for `serve` and `worker`; gunicorn takes
    logconfig_dict() below instead)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(kind))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Our own access line replaces werkzeug's per-request line (see server/ops/observe.py).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def logconfig_dict(kind: str = "json") -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its own error log in our format, on the same handler."""
    formatter: dict[str, Any] = (
        {"()": "server.ops.logs.TextFormatter", "fmt": TEXT_FORMAT} if kind == "text"
        else {"()": "server.ops.logs.JsonFormatter"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "server.ops.logs.RequestIdFilter"}},
        "formatters": {"safehold": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "safehold",
                                "filters": ["request_id"], "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            # gunicorn's access lines are replaced by ours, which carry the request id.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
