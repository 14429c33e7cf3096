"""Chunk uploads served beside Flask's dispatch: the same checks and answers, less machinery.

A phone sends a chunk every few seconds, so `PUT .../chunks/{seq}` is most of the server's
work. Through Flask, each one pays for the request context, routing, flask-smorest's argument
parsing and response layers: measured, about as much CPU as the upload's own signature check,
hashing and metadata writes together. `ChunkUploadFastPath` wraps the Flask app's WSGI callable
and serves an *ordinary* upload itself: PUT to exactly the route's URL, with an Authorization
header, a plain Content-Length, no Transfer-Encoding and a Safehold-Descriptor header within its
documented limit. Anything else (a missing header, an odd URL, another method) goes on to Flask,
so it gets exactly the documented route's answer.

What it runs is what the route runs: `authenticate` (token, rate limit, devices only), werkzeug's
own input stream (same limits, same disconnect handling), `upload_chunk`, the app's JSON encoding
of the receipt, and the app's error handlers. The route (server/api/chunks.py) stays
registered: it documents the endpoint in /openapi.json and serves the unusual requests.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.wrappers import Response
from werkzeug.wsgi import get_input_stream

from schemas.chunks import MAX_DESCRIPTOR_HEADER
from schemas.common import STREAM_PATTERN, UUID_PATTERN
from server.api.chunks import read_exactly, receipt_body
from server.auth import authenticate
from server.context import Services
from server.errors import error_response
from server.metadata_encounters import ChunkRecord
from server.uploads import upload_chunk

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_SEQ = 4294967295  # the route's int(max=...) converter
_CHUNK_URL = re.compile(
    f"/v1/encounters/({UUID_PATTERN.strip('^$')})/streams/({STREAM_PATTERN.strip('^$')})"
    "/chunks/(0|[1-9][0-9]{0,9})")
_DIGITS = re.compile("[0-9]+")


def ordinary_upload(environ: dict[str, Any]) -> tuple[str, str, int] | None:
    """The (encounter, stream, seq) of an ordinary chunk upload; None for anything else."""
    if environ.get("REQUEST_METHOD") != "PUT":
        return None
    url = _CHUNK_URL.fullmatch(environ.get("PATH_INFO") or "")
    if url is None or int(url[3]) > MAX_SEQ:
        return None
    descriptor = environ.get("HTTP_SAFEHOLD_DESCRIPTOR")
    if (descriptor is None or len(descriptor) > MAX_DESCRIPTOR_HEADER
            or "HTTP_AUTHORIZATION" not in environ or "HTTP_TRANSFER_ENCODING" in environ
            or not _DIGITS.fullmatch(environ.get("CONTENT_LENGTH") or "")):
        return None
    return url[1], url[2], int(url[3])


class ChunkUploadFastPath:
    def __init__(self, app: Flask, services: Services) -> None:
        self.app = app
        self.services = services
        self.flask_wsgi: WsgiApp = app.wsgi_app

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        slot = ordinary_upload(environ)
        if slot is None:
            return self.flask_wsgi(environ, start_response)
        with self.app.app_context():  # error envelopes and services() need it
            outcome = self._upload(environ, slot)
            if isinstance(outcome, Response):
                return outcome(environ, start_response)
            body = self._receipt_json(outcome[0])
        start_response("201 CREATED" if outcome[1] else "200 OK",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _upload(self, environ: dict[str, Any],
                slot: tuple[str, str, int]) -> tuple[ChunkRecord, bool] | Response:
        try:
            caller = authenticate(self.services, authorization=environ["HTTP_AUTHORIZATION"])
            return upload_chunk(
                self.services, caller, slot, environ["HTTP_SAFEHOLD_DESCRIPTOR"],
                int(environ["CONTENT_LENGTH"]), functools.partial(self._read_body, environ),
            )
        except Exception as exc:  # refusals, werkzeug's HTTP errors, failures: as the app answers
            return error_response(exc)

    def _read_body(self, environ: dict[str, Any], length: int) -> bytes:
        # The stream is made only now, as Flask makes request.stream on first use: its own
        # size check must not answer before upload_chunk's ordered checks have run.
        stream = get_input_stream(environ, max_content_length=self.app.config["MAX_CONTENT_LENGTH"])
        return read_exactly(stream, length)

    def _receipt_json(self, record: ChunkRecord) -> bytes:
        """The receipt as the route sends it: its ReceiptSchema dump (the identity on these
        strings and integers) encoded as jsonify encodes (tests/test_fast_upload.py compares)."""
        compact = getattr(self.app.json, "compact", None)
        layout: dict[str, Any] = {"indent": 2} if (compact is None and self.app.debug) or \
            compact is False else {"separators": (",", ":")}
        return (self.app.json.dumps(receipt_body(record), **layout) + "\n").encode("utf-8")
