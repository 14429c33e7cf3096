"""One JSON error envelope for every failure, whatever raised it.

    {"error": {"code": "<stable_code>", "message": "<human sentence>", "details": ...}}

Our own refusals raise ApiError; werkzeug's HTTP errors (404 from routing, 405, 413, ...) and
webargs' validation errors (422) are converted here, and anything unexpected becomes a logged
500 without internals in the body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import BadRequest, HTTPException

from server.ops.faults import storage_fault

log = logging.getLogger("safehold.server")

# status -> (code, message) for errors raised by werkzeug / flask-smorest rather than by us
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request could not be understood."),
    401: ("auth_required", "This needs an Authorization: Bearer token."),
    403: ("forbidden", "You may not do this."),
    404: ("not_found", "There is nothing here."),
    405: ("method_not_allowed", "This method is not allowed here; see the Allow header."),
    406: ("not_acceptable", "The server cannot answer in a format you accept."),
    411: ("length_required", "A Content-Length header is required."),
    413: ("too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body has the wrong Content-Type."),
    416: ("range_not_satisfiable", "The requested byte range is outside the chunk."),
    422: ("invalid_request", "The request is not valid; see details."),
    429: ("rate_limited", "Too many requests; retry after the Retry-After seconds."),
    500: ("internal_error", "The server failed; nothing was acknowledged. Try again."),
}


class ApiError(Exception):
    """A refusal with its HTTP status, stable code and a message a person can act on."""

    def __init__(self, status: int, code: str, message: str, *, details: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


class NonCanonicalNumber(BadRequest):
    """A number in a path written other than as its canonical decimal (`007`, non-ASCII
    digits); raised by the path converter, answered 400 `non_canonical_number`."""

    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} is not a canonical decimal number: write it without "
                         "leading zeros, in ASCII digits (e.g. 7, not 007).")


def not_found(message: str = "There is no such encounter (or it is not yours).") -> ApiError:
    return ApiError(404, "not_found", message)


def envelope(status: int, code: str, message: str, details: Any = None,
             headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_api_error(error: ApiError) -> Response:
    return envelope(error.status, error.code, error.message, error.details, error.headers)


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code, message = _HTTP_CODES.get(status, (f"http_{status}", error.description or ""))
    data = getattr(error, "data", None) or {}
    details = data.get("messages")  # webargs puts field errors here
    # Keep only the headers werkzeug means for the client (Allow on 405, Retry-After, ...).
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return envelope(status, code, message, details, headers)


def _handle_non_canonical_number(error: HTTPException) -> Response:
    return envelope(400, "non_canonical_number", str(error.description))


def _handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return _handle_http_exception(error)
    fault = storage_fault(error)  # disk full, damaged database: 503 as documented, not 500
    if fault is not None:
        log.critical("storage %s while serving a request: %s", fault, error, exc_info=error)
        return envelope(503, "storage_unavailable", "Storage is unavailable right now; nothing "
                        "was acknowledged. Retry later.", headers={"Retry-After": "5"})
    log.exception("unexpected error while serving a request")
    code, message = _HTTP_CODES[500]
    return envelope(500, code, message)


def register_error_handlers(app: Flask) -> None:
    """Install the envelope for every error; call after flask-smorest's Api(app)."""
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(NonCanonicalNumber, _handle_non_canonical_number)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
