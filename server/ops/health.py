"""GET /healthz, /readyz and /metrics: for load balancers, orchestrators and Prometheus.

- /healthz answers 200 while the process can answer at all (liveness: restart it if not).
- /readyz answers 200 only when the metadata database answers a query and the blob store is
  reachable with room to write; otherwise 503 `not_ready` (with Retry-After) naming what
  failed, so a load balancer sends phones elsewhere instead of into 503s on every upload.
- /metrics is the Prometheus text format (server/ops/metrics.py). With SAFEHOLD_METRICS_TOKEN
  set it needs `Authorization: Bearer <that token>`.
None of them is rate-limited: probes come often and from few addresses.
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.health import HealthSchema, ReadySchema
from server.api.common import refusals
from server.blobs.local import LocalBlobStore
from server.context import Services, services
from server.errors import ApiError
from server.ops.faults import database_damaged, storage_fault
from server.ops.metrics import CONTENT_TYPE, render
from server.store.schema import MIGRATIONS

blp = Blueprint("health", __name__, url_prefix="", description="Health and metrics")
log = logging.getLogger("safehold.server")
PROBE_KEY = "readyz/probe"  # never stored; asking for it shows the store answers
LATEST_SCHEMA = max(migration.version for migration in MIGRATIONS)


def _database_check(svc: Services) -> str:
    try:
        version = svc.store.schema_version()
    except Exception as exc:
        log.exception("readiness: the database does not answer")
        return {"damaged": "damaged", "full": "disk full"}.get(storage_fault(exc) or "",
                                                             "unreachable")
    if database_damaged():
        return "damaged"
    return "ok" if version >= LATEST_SCHEMA else "not migrated"


def _blob_store_check(svc: Services) -> str:
    try:
        svc.blobs.exists(PROBE_KEY)
        if isinstance(svc.blobs, LocalBlobStore):
            root = svc.blobs.root
            if not root.is_dir():
                return "missing"
            if not os.access(root, os.W_OK | os.X_OK):
                return "not writable"
            # No room for two chunks: uploads would be refused 503 anyway.
            if shutil.disk_usage(root).free < 2 * int(svc.config["MAX_CHUNK_BYTES"]):
                return "disk full"
    except Exception:
        log.exception("readiness: the blob store does not answer")
        return "unreachable"
    return "ok"


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @refusals(blp, 503)
    @blp.response(200, ReadySchema)
    def get(self) -> dict[str, Any]:
        """Readiness: the database answers and the blob store is reachable and has room."""
        svc = services()
        checks = {"database": _database_check(svc), "blob_store": _blob_store_check(svc)}
        failed = {name: state for name, state in checks.items() if state != "ok"}
        if failed:
            raise ApiError(503, "not_ready", "Not ready: " + ", ".join(
                f"{name} {state}" for name, state in failed.items()) + ".",
                details=checks, headers={"Retry-After": "5"})
        return {"status": "ready", "checks": checks}


@blp.route("/metrics")
class Metrics(MethodView):
    @refusals(blp, 401)
    @blp.response(200, {"type": "string"}, content_type="text/plain",
                  description="Prometheus text exposition format 0.0.4")
    def get(self) -> Response:
        """Counters, histograms and queue depths for Prometheus."""
        svc = services()
        wanted = svc.config.get("METRICS_TOKEN")
        if wanted:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), str(wanted).encode()):
                raise ApiError(401, "auth_required", "Metrics need `Authorization: Bearer "
                               "<SAFEHOLD_METRICS_TOKEN>`.", headers={"WWW-Authenticate": "Bearer"})
        return Response(render(svc.store), content_type=CONTENT_TYPE)
