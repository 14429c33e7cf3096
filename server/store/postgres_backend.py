"""Shared metadata: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

`SAFEHOLD_DATABASE_URL=postgresql://...` puts every table here, so any number of API nodes and
workers share one state. What SQLite gets from its single writer, PostgreSQL gets from locks:

- an append to an encounter's log locks the encounter's row (`SELECT ... FOR UPDATE`,
  LogQueries.lock_log / frontier): one leaf index per chunk, dense, checkpoints growing;
- retries stay idempotent through the primary keys and `ON CONFLICT DO NOTHING`;
- the worker claims deliveries with `FOR UPDATE ... SKIP LOCKED`, so two workers never lease
  the same one;
- change rows of one account take their ids one transaction after another (an advisory lock,
  Connection.serialize), so the feed's order is the commit order.

Writes run at READ COMMITTED (each statement sees what committed before it, after a lock
wait); reads at REPEATABLE READ, one snapshot for all their queries. The pool is made on first
use in each process: gunicorn forks workers after the app is loaded.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from server.store.metadata import Store, Tx
from server.store.sql import Connection, IntegrityError, Row, StoreUnavailable, split_script

CONNECT_TIMEOUT_SECONDS = 10
T = TypeVar("T")
MIGRATION_LOCK = 0x5AFE401D  # pg_advisory_xact_lock key: one migrating process at a time


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (and a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection(Connection):
    dialect = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def skip_locked(self, table: str) -> str:
        return f" FOR UPDATE OF {table} SKIP LOCKED"

    def serialize(self, key: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", [key])

    def _cursor(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[Row]:
        cursor = self.conn.cursor(row_factory=dict_row)
        try:
            cursor.execute(_placeholders(sql), tuple(params))
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._cursor(sql, params) as cursor:
            return cursor.rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._cursor(sql, params) as cursor:
            return cursor.fetchall()

    def script(self, sql: str) -> None:
        for statement in split_script(sql):
            self.execute(statement)


def redacted(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(Store):
    def __init__(self, url: str, pool_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self.pool_size = pool_size
        self._pool: tuple[int, ConnectionPool[Any]] | None = None  # (pid, pool)
        self._pool_lock = threading.Lock()
        self._check_reachable()

    def __str__(self) -> str:
        return redacted(self.url)

    def _check_reachable(self) -> None:
        """Fail at start, in words an operator can act on, rather than at the first request."""
        try:
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        except (psycopg.Error, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreUnavailable(
                f"cannot reach the PostgreSQL database {redacted(self.url)}: {reason}; check "
                "SAFEHOLD_DATABASE_URL (host, port, database, user, password) and that the "
                "server is running") from exc

    def _connections(self) -> ConnectionPool[Any]:
        pid = os.getpid()
        with self._pool_lock:
            if self._pool is None or self._pool[0] != pid:
                pool: ConnectionPool[Any] = ConnectionPool(
                    self.url, min_size=1, max_size=self.pool_size, open=True,
                    kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
                    name=f"safehold-{pid}")
                self._pool = (pid, pool)
            return self._pool[1]

    @contextmanager
    def _transaction(self, first: str | None) -> Iterator[Tx]:
        # The pool's context commits when the block ends normally and rolls back on an
        # exception; psycopg opens the transaction at the first statement.
        with self._connections().connection() as conn:
            db = PostgresConnection(conn)
            if first:
                db.execute(first)
            yield Tx(db)

    def write(self) -> AbstractContextManager[Tx]:
        return self._transaction(None)

    def read(self) -> AbstractContextManager[Tx]:
        return self._transaction("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def write_grouped(self, work: Callable[[Tx], T]) -> T:
        """Each upload in a transaction of its own. Sharing one (as SQLite does, to share its
        fsync) would make one transaction hold the locks of several encounters and accounts
        taken in arrival order, and two such batches deadlock; PostgreSQL already groups the
        WAL flushes of concurrent commits by itself."""
        with self.write() as tx:
            return work(tx)

    @contextmanager
    def migration_transaction(self) -> Iterator[Tx]:
        with self._transaction(None) as tx:
            tx.db.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
            yield tx

    def has_migrations_table(self) -> bool:
        with self._transaction(None) as tx:
            return tx.db.scalar("SELECT to_regclass('migrations') IS NOT NULL") is True

    def close(self) -> None:
        if self._pool is not None and self._pool[0] == os.getpid():
            self._pool[1].close()
        self._pool = None
