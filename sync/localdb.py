"""The device's SQLite files (outbox.db, contacts.db): one way to open them, one way to write.

Several processes share a state folder (a `record` and a `sync` at once), so every write is one
short IMMEDIATE transaction that takes the write lock up front instead of failing half-way on an
upgrade, and WAL with synchronous=FULL makes it durable when the block exits.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import sqlite_utils


def open_database(path: Path) -> sqlite_utils.Database:
    """A connection in autocommit mode (transactions are ours), WAL, durable commits."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=30.0)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@contextmanager
def immediate(db: sqlite_utils.Database,
              lock: threading.RLock | None = None) -> Iterator[sqlite_utils.Database]:
    """One IMMEDIATE transaction: all or nothing, and durable when the block exits."""
    guard: AbstractContextManager[object] = lock if lock is not None else nullcontext()
    with guard:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
