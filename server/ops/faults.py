"""Storage faults that reach the error handler: answered 503 `storage_unavailable` (retry
later, nothing was acknowledged), the documented code, instead of a generic 500.

A full disk shows up as sqlite3's "database or disk is full" or an OSError ENOSPC, possibly
wrapped (a shared group commit raises BatchFailed from it). A database whose pages are damaged
("database disk image is malformed") is also answered 503, logged as critical, and marks the
process not ready (GET /readyz), so a load balancer stops sending it phones. A PostgreSQL
that stops answering, or a transaction it aborted (deadlock, lost connection), is the same
503: nothing was acknowledged and a retry is safe.
"""

from __future__ import annotations

import errno
import sqlite3
import threading

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
_damaged = threading.Event()


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def storage_fault(error: BaseException) -> str | None:
    """'full', 'damaged' or None (not a storage fault) for an exception and its causes."""
    for cause in _causes(error):
        text = str(cause).lower()
        if isinstance(cause, sqlite3.DatabaseError):
            if "malformed" in text or "not a database" in text:
                _damaged.set()
                return "damaged"
            if "disk is full" in text or "disk i/o error" in text:
                return "full"
        elif isinstance(cause, OSError) and cause.errno in _FULL_ERRNOS:
            return "full"
        elif _postgres_unavailable(cause):
            return "unavailable"
    return None


def _postgres_unavailable(error: BaseException) -> bool:
    """psycopg's OperationalError (and its subclasses: a deadlock, the pool's timeout), without
    importing psycopg into processes that run on SQLite."""
    return any(kind.__name__ == "OperationalError" and kind.__module__.startswith("psycopg")
               for kind in type(error).__mro__)


def database_damaged() -> bool:
    """Whether this process has met a damaged database page since it started."""
    return _damaged.is_set()
