"""The metadata store: one interface (Store, Tx), two implementations.

- SqliteStore (sqlite_backend.py): the zero-config default, one SQLite file through sqlite-utils.
- PostgresStore (postgres_backend.py): `SAFEHOLD_DATABASE_URL=postgresql://...`, shared by any
  number of API nodes and workers.

Callers never ask which one they have: they open a transaction (read, write, write_grouped)
and call the queries of Tx, which are written once in SQL both databases accept (store/sql.py).
Migrations live in code (server/store/schema.py), recorded in `migrations`, the same list for
both. Every write runs in one transaction, so a change row is committed with what it reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from server.store.accounts import AccountQueries
from server.store.changes import ChangeQueries
from server.store.contacts import ContactQueries
from server.store.deletion import DeletionQueries
from server.store.encounters import EncounterQueries
from server.store.group_commit import GroupCommit
from server.store.log import LogQueries
from server.store.notify import NotifyQueries
from server.store.pake import PakeQueries
from server.store.roster import RosterQueries
from server.store.shares import ShareQueries
from server.store.sql import Connection
from server.store.witness import WitnessQueries

T = TypeVar("T")


class Tx(AccountQueries, EncounterQueries, LogQueries, ChangeQueries, NotifyQueries,
         ContactQueries, DeletionQueries, RosterQueries, WitnessQueries, ShareQueries,
         PakeQueries):
    """The queries of one transaction; obtained from Store.read() or Store.write()."""

    def __init__(self, db: Connection) -> None:
        self.db = db


class Store(ABC):
    def __init__(self) -> None:
        self._group: GroupCommit[Tx] = GroupCommit(self.write)

    @abstractmethod
    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction; reads inside it see the latest committed state, and two write
        transactions that append to one encounter's log never interleave."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Tx]:
        """A read transaction: one consistent snapshot for several queries."""

    @abstractmethod
    def migration_transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction that excludes every other migrating process."""

    @abstractmethod
    def has_migrations_table(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    def write_grouped(self, work: Callable[[Tx], T]) -> T:
        """`work(tx)` in a write transaction shared with other threads' (store/group_commit.py):
        returns only once that transaction is committed; its exception undoes its writes alone."""
        return self._group.run(work)

    @property
    def grouped_writes_waiting(self) -> int:
        return self._group.waiting

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns their names (empty when already current)."""
        from server.store.schema import MIGRATIONS, apply_migrations

        return apply_migrations(self, MIGRATIONS)

    def schema_version(self) -> int:
        if not self.has_migrations_table():
            return 0
        with self.read() as tx:
            return int(tx.db.scalar("SELECT COALESCE(MAX(version), 0) FROM migrations"))


def open_store(config: Mapping[str, Any]) -> Store:
    """The store the configuration names: PostgreSQL for a DATABASE_URL, else the SQLite file."""
    url = config.get("DATABASE_URL")
    if url:
        from server.store.postgres_backend import PostgresStore

        return PostgresStore(str(url), pool_size=int(config.get("DATABASE_POOL_SIZE") or 10))
    from server.store.sqlite_backend import SqliteStore

    return SqliteStore(config["DATABASE_FILE"])
