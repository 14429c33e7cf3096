"""The device's SQLite files (outbox.db, contacts.db): one way to open them, one way to write.

Several processes share a state folder (a `record` and a `sync` at once), so every write is one
short IMMEDIATE transaction that takes the write lock up front instead of failing half-way on an
upgrade, and WAL with synchronous=FULL makes it durable when the block exits.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import sqlite_utils

log = logging.getLogger("safehold.state")
PRIVATE_FILE = 0o600


def private_file(path: Path) -> None:
    """Make `path` 0600 (it may hold an invitation's secret), saying so if it was wider."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~PRIVATE_FILE:
        os.chmod(path, PRIVATE_FILE)
        log.warning("%s was readable by other users (mode %o); changed it to 600", path, mode)


def open_database(path: Path) -> sqlite_utils.Database:
    """A connection in autocommit mode (transactions are ours), WAL, durable commits.

    The file is created 0600 before SQLite opens it (SQLite would use the umask, and gives its
    -wal and -shm files the main file's mode); existing ones are tightened."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE))
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-journal"):
        if (path.parent / name).exists():
            private_file(path.parent / name)
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
