"""The one connection interface the query mixins use, whatever database sits below.

The queries in server/store/*.py are written once, in SQL both SQLite and PostgreSQL accept:
`?` placeholders, `INSERT ... ON CONFLICT DO NOTHING`, no dialect functions. A backend
(sqlite_backend.py, postgres_backend.py) turns them into its driver's calls and its driver's
constraint errors into `IntegrityError`, so no code above the store asks which database it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

Row = dict[str, Any]


class IntegrityError(Exception):
    """A unique, primary-key or foreign-key constraint refused a write (either backend)."""


class StoreUnavailable(Exception):
    """The database cannot be reached or opened (bad URL, server down, wrong password)."""


class Connection(ABC):
    """One database connection, used by one thread at a time, inside a transaction."""

    dialect: str  # "sqlite" | "postgresql"
    # Appended to the SELECT that reads an encounter's log before an append: PostgreSQL locks
    # the row so appends through different API nodes queue; SQLite's write lock already does.
    for_update: str = ""

    def serialize(self, key: str) -> None:
        """Until this transaction ends, others that serialize on `key` wait (PostgreSQL).

        The changes feed: ids come from a sequence, and a reader must never see id 7 committed
        while id 6 is still to come, or its cursor would skip 6. So writers of one account's
        rows take their ids one transaction after another. SQLite: one writer at a time anyway.
        """
        return None

    def skip_locked(self, table: str) -> str:
        """Appended to a claiming SELECT: rows of `table` another transaction is claiming are
        passed over instead of claimed twice (PostgreSQL); SQLite has one writer at a time."""
        return ""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row a SELECT returns, as {column: value}."""

    @abstractmethod
    def script(self, sql: str) -> None:
        """Several `;`-separated statements (DDL) in the current transaction."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.one(sql, params)
        return next(iter(row.values())) if row else None

    def insert(self, table: str, row: Mapping[str, Any], *, ignore: bool = False) -> int:
        """INSERT one row; with `ignore`, a row whose key is taken is skipped (returns 0)."""
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 (our names)
        return self.execute(sql + (" ON CONFLICT DO NOTHING" if ignore else ""),
                            list(row.values()))


def split_script(sql: str) -> list[str]:
    """The statements of a DDL script (no `;` inside string literals in our migrations)."""
    return [statement.strip() for statement in sql.split(";") if statement.strip()]
