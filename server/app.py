"""The Flask application factory. No app exists at import time (server/wsgi.py makes one)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from flask_smorest import Api

from schemas.common import ErrorEnvelopeSchema, Rfc3339
from server.api import register_api
from server.api.common import CanonicalIntConverter, StreamConverter, UuidConverter
from server.blobs.store import make_blob_store
from server.config import complete_config, load_config
from server.context import Services
from server.errors import ApiError, register_error_handlers
from server.identity.ratelimit import RateLimiter
from server.json_depth import refuse_deep_json
from server.ops import observe
from server.ops.logs import LOG_FORMAT_ENV, RequestIdFilter, make_formatter
from server.store.metadata import open_store
from server.tlog.serverkey import describe, load_or_create_server_key
from server.web.browser import register_web_pages
from server.web.docs import DOCS_CONFIG, register_docs
from server.web.landing import register_pages

log = logging.getLogger("safehold.server")
MAX_JSON_BODY = 64 * 1024
CHUNK_UPLOAD_ENDPOINT = "chunks.Chunk"


class SafeholdApi(Api):
    """flask-smorest's Api, documenting our error envelope for every error status."""

    ERROR_SCHEMA = ErrorEnvelopeSchema


def _ensure_log_handler() -> None:
    # The key fingerprint must reach the operator even when nobody configured logging.
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(make_formatter(os.environ.get(LOG_FORMAT_ENV, "json")))
        handler.addFilter(RequestIdFilter())
        log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def build_services(config: dict[str, Any]) -> Services:
    store = open_store(config)
    applied = store.migrate()
    if applied:
        log.info("database %s: applied migrations %s", store, applied)
    signing_key = load_or_create_server_key(config["SERVER_KEY_FILE"], config["SERVER_NAME"])
    server_key, fingerprint = describe(signing_key)
    log.info("server %s key fingerprint %s", config["SERVER_NAME"], fingerprint)
    return Services(config=config, store=store, blobs=make_blob_store(config),
                    signing_key=signing_key, server_key=server_key, fingerprint=fingerprint,
                    limiter=RateLimiter(config["RATE_PER_MINUTE"]),
                    auth_failures=RateLimiter(config["AUTH_FAILURES_PER_MINUTE"]))


def _limit_json_bodies() -> None:
    """Small bodies everywhere but the chunk upload, refused on Content-Length before reading."""
    if request.endpoint != CHUNK_UPLOAD_ENDPOINT and (request.content_length or 0) > MAX_JSON_BODY:
        raise ApiError(413, "too_large", f"Request bodies here are at most {MAX_JSON_BODY} bytes.")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app for `config` (see server/config.py); from the environment when None."""
    _ensure_log_handler()
    settings = load_config(os.environ) if config is None else complete_config(config)
    app = Flask("safehold")
    app.config.update(
        API_TITLE="Safehold", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",
        # A backstop for bodies without Content-Length (chunked); uploads need one anyway.
        MAX_CONTENT_LENGTH=max(settings["MAX_CHUNK_BYTES"], MAX_JSON_BODY) + 1,
        API_SPEC_OPTIONS={"info": {"description": "Encrypted, tamper-evident encounter "
                                   "recordings. Full contract: docs/protocol.md."}},
        **DOCS_CONFIG,
    )
    app.extensions["safehold"] = build_services(settings)
    app.url_map.converters["uuid_lower"] = UuidConverter
    app.url_map.converters["stream"] = StreamConverter
    app.url_map.converters["int"] = CanonicalIntConverter  # every <int:…> in a path
    api = SafeholdApi(app)
    api.register_field(Rfc3339, "string", "date-time")
    register_api(api)
    register_error_handlers(app)
    observe.install(app, CHUNK_UPLOAD_ENDPOINT)  # first: request id and timing for all
    app.before_request(_limit_json_bodies)
    app.before_request(lambda: refuse_deep_json(CHUNK_UPLOAD_ENDPOINT))

    register_pages(app, settings["SERVER_NAME"])
    register_web_pages(app)
    register_docs(app)  # /docs: Swagger UI, its files served from here
    return app
