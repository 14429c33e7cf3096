"""Reading one row without sqlite-utils' per-query savepoint.

`Database.query` wraps every SELECT in a SAVEPOINT/RELEASE pair (to roll back statements that
turn out not to return rows) and re-parses the SQL's first keyword. The lookups made on every
request (token, device, encounter, tombstone, chunk) are fixed SELECTs, so they use the
connection's cursor directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database


def one_row(db: Database, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
    """The first row `sql` selects, as {column: value}; None when there is none."""
    cursor = db.conn.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}
