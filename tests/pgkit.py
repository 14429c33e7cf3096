"""The suite's PostgreSQL pass: with SAFEHOLD_TEST_DATABASE_URL set (`.ci/run` starts a throwaway
PostgreSQL with scripts/pg and sets it), every server the tests start keeps its metadata in a
fresh PostgreSQL database of its own instead of the SQLite file in its data folder.

The database is named after the data folder, so a server restarted on the same folder (crash
and restart tests) finds its metadata again, as it would find its SQLite file.
Tests that open the SQLite file themselves (an operator editing rows, copying the file as a
backup) are marked `sqlite_only` and skipped on this pass, with their reason.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

TEST_DATABASE_URL = os.environ.get("SAFEHOLD_TEST_DATABASE_URL") or None
_created: set[str] = set()


def on_postgres() -> bool:
    return TEST_DATABASE_URL is not None


def database_url_for(data_dir: Path) -> str | None:
    """The PostgreSQL URL of the server on `data_dir` (made on first use); None on SQLite."""
    if TEST_DATABASE_URL is None:
        return None
    import psycopg

    name = "t_" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]
    if name not in _created:
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        _created.add(name)
    return TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + name


def server_env(data_dir: Path) -> dict[str, str]:
    """What to add to a server's environment for this pass."""
    url = database_url_for(data_dir)
    return {"SAFEHOLD_DATABASE_URL": url} if url else {}


def rows_of(data_dir: Path, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `tables` (ordered by their first two columns), on either backend."""
    url = database_url_for(data_dir)
    if url is None:
        import sqlite3

        db = sqlite3.connect(f"file:{Path(data_dir) / 'safehold.sqlite3'}?mode=ro", uri=True)
        try:
            return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                    for table in tables}
        finally:
            db.close()
    import psycopg

    with psycopg.connect(url) as conn:
        return {table: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
                for table in tables}
