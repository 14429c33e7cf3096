"""gunicorn settings for `web:` in the Procfile (read by gunicorn, not imported by the app).

Everything can be overridden from the environment, so one Procfile fits a laptop and a PaaS:
SAFEHOLD_BIND (else 0.0.0.0:$PORT when the platform sets PORT, else 127.0.0.1:8000),
WEB_CONCURRENCY (worker processes), SAFEHOLD_THREADS (threads per worker).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from server.ops.logs import log_format
from server.ops.logs import logconfig_dict as logconfig_dict_for


def _bind() -> str:
    if os.environ.get("SAFEHOLD_BIND"):
        return os.environ["SAFEHOLD_BIND"]
    if os.environ.get("PORT"):
        return f"0.0.0.0:{os.environ['PORT']}"  # noqa: S104 - a PaaS routes to this port
    return "127.0.0.1:8000"


bind = [_bind()]
# Uploads spend most of their time in fsync, which releases the GIL: a few threads per process
# keep the disk busy while processes give real CPU parallelism for signature checks and hashing.
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, min(8, 2 * (os.cpu_count() or 1))))
# Connections live on an event loop (slow and idle clients hold no thread) and complete
# requests run on `threads` OS threads per process: server/ops/evented.py says why not gthread
# or the plain gevent worker. SAFEHOLD_HEADER_TIMEOUT / SAFEHOLD_BODY_TIMEOUT bound slow clients.
worker_class = "server.ops.evented.BufferedGeventWorker"
threads = int(os.environ.get("SAFEHOLD_THREADS") or 4)
worker_connections = int(os.environ.get("SAFEHOLD_WORKER_CONNECTIONS") or 1000)
# Each worker builds its own app: SQLite connections and boto3 clients must not cross a fork.
preload_app = False
timeout = 60
graceful_timeout = 30
# Kept-alive connections: with the evented worker this only switches them on (it must stay > 0:
# the head deadline runs in the keep-alive loop); how long one may idle is SAFEHOLD_HEADER_TIMEOUT.
keepalive = 5
# A chunk body is at most SAFEHOLD_MAX_CHUNK_BYTES and is refused (413) on Content-Length before
# it is read; headers stay small (the signed descriptor is well under 2 KiB).
limit_request_field_size = 8190
# Heartbeat files off the (possibly slow) data disk; gunicorn makes them with mkstemp.
if os.path.isdir("/dev/shm"):  # noqa: S108
    worker_tmp_dir = "/dev/shm"  # noqa: S108
# gunicorn's own default umask is 0: files the workers make would be world-readable.
umask = 0o077
# One JSON format for gunicorn's own lines and the app's (server/ops/logs.py); the app writes
# the access lines itself, with the request id, so gunicorn's access log stays off.
accesslog = None
errorlog = "-"
logconfig_dict = logconfig_dict_for(log_format(os.environ))


# Each worker process counts its own metrics in files here, and a scrape of /metrics sums them
# (server/ops/metrics.py). Set before any worker imports prometheus_client.
_MADE_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MADE_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix="safehold-metrics-", dir=globals().get("worker_tmp_dir"))


def _clear_metrics_dir() -> None:
    """Counts of an earlier run (an operator-named folder outlives us) would be added in."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _MADE_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


SAFEHOLD_APP = "server.wsgi:app"


def on_starting(server: Any) -> None:
    """Refuse to start on a setting or database that cannot work (one line saying what to do,
    before any worker is forked); remove blob temp files orphaned by a crash in an earlier run."""
    _clear_metrics_dir()
    if getattr(server.app, "app_uri", None) != SAFEHOLD_APP:
        return  # the same settings serving another app (bench/ingest.py's baseline)
    from server.blobs.local import LocalBlobStore
    from server.blobs.store import make_blob_store
    from server.ops.startup import StartupError, production_checks

    try:
        config = production_checks(os.environ)
    except StartupError as exc:
        server.log.error("not starting: %s", exc)
        on_exit(server)
        raise SystemExit(2)
    store = make_blob_store(config)
    if isinstance(store, LocalBlobStore):
        removed = store.sweep_temp_files(older_than_seconds=3600)
        if removed:
            server.log.info("removed %d orphaned blob temp files under %s", removed, store.root)
