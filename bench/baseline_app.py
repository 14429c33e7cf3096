"""The ingest baseline: a bare WSGI app that only writes, fsyncs and renames each request body.

bench/ingest.py runs it under the same gunicorn settings as Safehold, so the ratio between the two
is what Safehold's checks, metadata, Merkle log and signatures cost over raw durable writes.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from typing import Any

ROOT = os.environ.get("BASELINE_DIR", "./baseline-data")
os.makedirs(ROOT, exist_ok=True)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "GET":  # readiness checks and warm-up
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    name = environ.get("PATH_INFO", "/").strip("/").replace("/", "_") or "root"
    temp = os.path.join(ROOT, f".tmp-{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, os.path.join(ROOT, name))
    reply = b'{"stored": true}'
    start_response("201 Created", [("Content-Type", "application/json"),
                                   ("Content-Length", str(len(reply)))])
    return [reply]
