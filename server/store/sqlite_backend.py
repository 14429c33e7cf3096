"""The embedded default: the metadata in one SQLite file, through sqlite-utils.

- WAL mode (readers never block the writer), `synchronous=FULL` (a commit is on disk when it
  returns: a receipt is never sent for metadata that a power cut could lose).
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
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from server.datadir import private_database
from server.store.metadata import Store, Tx
from server.store.sql import Connection, IntegrityError, Row, split_script

BUSY_TIMEOUT_SECONDS = 30.0


class SqliteConnection(Connection):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # sqlite-utils for the migrations that shipped as its table helpers (schema.py).
        self.database = Database(conn, execute_plugins=False)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self.conn.execute(sql, params).rowcount
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # The cursor directly: sqlite-utils' Database.query wraps each SELECT in a savepoint,
        # a cost paid on every request's token/device/encounter lookups.
        cursor = self.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cursor = self.conn.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}

    def script(self, sql: str) -> None:
        # Not executescript: it COMMITs first, and a migration must stay one transaction.
        for statement in split_script(sql):
            self.execute(statement)

    def close(self) -> None:
        self.conn.close()


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        private_database(self.path)  # 0700 folder, 0600 files: it holds contacts' secrets
        self._local = threading.local()
        self._writer_lock = threading.Lock()
        self._writer_lock_path = self.path.with_name(self.path.name + ".writer-lock")
        self._lock_fd: tuple[int, int] | None = None  # (pid, fd)

    def __str__(self) -> str:  # what logs and `safehold migrate` name
        return str(self.path)

    def _connection(self) -> SqliteConnection:
        conn: SqliteConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            raw = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECONDS)
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=FULL")
            raw.execute("PRAGMA foreign_keys=ON")
            conn = SqliteConnection(raw)
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Tx]:
        conn = self._connection()
        conn.conn.execute(begin)
        try:
            yield Tx(conn)
        except BaseException:
            conn.conn.rollback()
            raise
        conn.conn.commit()

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
        return self._write_transaction()

    def read(self) -> AbstractContextManager[Tx]:
        return self._transaction("BEGIN")

    @contextmanager
    def migration_transaction(self) -> Iterator[Tx]:
        self._connection().conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file
        with self._write_transaction() as tx:
            yield tx

    def has_migrations_table(self) -> bool:
        return "migrations" in self._connection().database.table_names()

    def close(self) -> None:
        conn: SqliteConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
