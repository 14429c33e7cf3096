"""The metadata store: SQLite through sqlite-utils, the only code that touches the database.

- WAL mode (readers never block the writer), `synchronous=FULL` (a commit is on disk when it
  returns: a receipt is never sent for metadata that a power cut could lose).
- Migrations live in code (server/store/schema.py) and are recorded in `migrations`.
- Every write runs in one `BEGIN IMMEDIATE` transaction (Store.write), so a change row is
  committed with what it reports, and appends to an encounter's log are serialised. Chunk
  uploads share transactions between threads (Store.write_grouped): one COMMIT for several.
- One connection per thread: sqlite3 connections must not be shared across threads.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

from sqlite_utils import Database

from server.datadir import private_database
from server.store.accounts import AccountQueries
from server.store.changes import ChangeQueries
from server.store.contacts import ContactQueries
from server.store.deletion import DeletionQueries
from server.store.encounters import EncounterQueries
from server.store.group_commit import GroupCommit
from server.store.log import LogQueries
from server.store.notify import NotifyQueries
from server.store.roster import RosterQueries
from server.store.schema import MIGRATIONS, apply_migrations
from server.store.shares import ShareQueries
from server.store.witness import WitnessQueries

BUSY_TIMEOUT_SECONDS = 30.0
T = TypeVar("T")


class Tx(AccountQueries, EncounterQueries, LogQueries, ChangeQueries, NotifyQueries,
         ContactQueries, DeletionQueries, RosterQueries, WitnessQueries, ShareQueries):
    """The queries of one transaction; obtained from Store.read() or Store.write()."""

    def __init__(self, db: Database) -> None:
        self.db = db


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        private_database(self.path)  # 0700 folder, 0600 files: it holds contacts' secrets
        self._local = threading.local()
        self._writer_lock = threading.Lock()
        self._writer_lock_path = self.path.with_name(self.path.name + ".writer-lock")
        self._group: GroupCommit[Tx] = GroupCommit(self.write)
        self._lock_fd: tuple[int, int] | None = None  # (pid, fd)

    def _database(self) -> Database:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECONDS)
            db = Database(conn, execute_plugins=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Tx]:
        db = self._database()
        db.execute(begin)
        try:
            yield Tx(db)
        except BaseException:
            db.rollback()
            raise
        db.commit()

    @contextmanager
    def _queued_writer(self) -> Iterator[None]:
        # SQLite's busy handler polls with sleeps of up to 100 ms, so writers that collide wait
        # far longer than the few ms a write holds the lock (measured: p99 ack latency 190+ ms).
        # A blocking thread lock plus flock on a side file queues writers of every gunicorn
        # worker process and wakes the next one as soon as the lock is free.
        with self._writer_lock:
            lock_fd = self._writer_lock_fd()
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _writer_lock_fd(self) -> int:
        """This process's descriptor of the lock file (held only under _writer_lock).

        Opened once per process: flock excludes open file descriptions, so a descriptor
        inherited across fork would let parent and child hold the lock at once.
        """
        pid = os.getpid()
        if self._lock_fd is None or self._lock_fd[0] != pid:
            fd = os.open(self._writer_lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            weakref.finalize(self, os.close, fd)
            self._lock_fd = (pid, fd)
        return self._lock_fd[1]

    @contextmanager
    def _write_transaction(self) -> Iterator[Tx]:
        with self._queued_writer(), self._transaction("BEGIN IMMEDIATE") as tx:
            yield tx

    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction; takes the write lock at once so reads inside stay current."""
        return self._write_transaction()

    def write_grouped(self, work: Callable[[Tx], T]) -> T:
        """`work(tx)` in a write transaction shared with other threads' (store/group_commit.py):
        returns only once that transaction is committed; its exception undoes its writes alone."""
        return self._group.run(work)

    @property
    def grouped_writes_waiting(self) -> int:
        return self._group.waiting

    def read(self) -> AbstractContextManager[Tx]:
        """A read transaction: one consistent snapshot for several queries."""
        return self._transaction("BEGIN")

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns their names (empty when already current)."""
        return apply_migrations(self._database(), MIGRATIONS)

    def schema_version(self) -> int:
        db = self._database()
        if "migrations" not in db.table_names():
            return 0
        row = db.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()
        return int(row[0])

    def close(self) -> None:
        db: Database | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
