"""Per-request bookkeeping: the request id, an access log line, and the request's metrics.

Installed by create_app. The access line replaces gunicorn's and werkzeug's (which know no
request id), so app, access and worker lines share one format (server/ops/logs.py).
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from server.ops.logs import REQUEST_ID_HEADER, current_request_id
from server.ops.metrics import ACK_SECONDS, BYTES_STORED, CHUNKS_STORED, REFUSALS

access_log = logging.getLogger("safehold.access")


def _start() -> None:
    g.started = time.perf_counter()
    current_request_id()


def _count_refusal(response: Response) -> None:
    body = response.get_json(silent=True) if response.is_json else None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    REFUSALS.labels(str(response.status_code), str(code or "none")).inc()


def _finish(response: Response, upload_endpoint: str) -> Response:
    elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
    response.headers[REQUEST_ID_HEADER] = current_request_id() or ""
    status = response.status_code
    if status >= 400:
        _count_refusal(response)
    elif request.endpoint == upload_endpoint and request.method == "PUT":
        ACK_SECONDS.observe(elapsed)
        if status == 201:
            CHUNKS_STORED.inc()
            BYTES_STORED.inc(request.content_length or 0)
    access_log.info("%s %s %d", request.method, request.full_path.rstrip("?"), status, extra={
        "method": request.method, "path": request.path, "status": status,
        "duration_ms": round(elapsed * 1000, 2), "remote_addr": request.remote_addr,
        "response_bytes": response.calculate_content_length()})
    return response


def install(app: Flask, upload_endpoint: str) -> None:
    app.before_request(_start)
    app.after_request(lambda response: _finish(response, upload_endpoint))
