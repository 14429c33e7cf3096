"""Checks run once before the server (or worker) starts serving, each failing with one line
that says what to do. gunicorn runs them in its master (server/gunicorn_conf.py), so a bad
setting stops the start instead of killing every worker with a traceback.

- SAFEHOLD_PUBLIC_URL must be set in production: it names the server's signing key, and a
  key made under the wrong name (gunicorn's default localhost:8000) is refused by phones.
- The settings parse, and the server key exists under this server's name (made here if new).
- The database passes SQLite's quick_check: a file with damaged pages would otherwise start
  and answer every request 500.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.config import ConfigError, load_config
from server.store.metadata import open_store
from server.store.sql import StoreUnavailable
from server.tlog.serverkey import ServerKeyError, load_or_create_server_key


class StartupError(RuntimeError):
    """The server must not start; the message is one line an operator can act on."""


def require_public_url(environ: Mapping[str, str]) -> None:
    if not (environ.get("SAFEHOLD_PUBLIC_URL") or "").strip():
        raise StartupError(
            "SAFEHOLD_PUBLIC_URL is not set: set it to the URL phones use to reach this server "
            "(e.g. SAFEHOLD_PUBLIC_URL=https://safehold.example.org); it names the server's "
            "signing key, see docs/operations.md")


def check_database(path: Path) -> None:
    """Refuse a database SQLite finds damaged (a missing or empty file is a new one)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(str(path), timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        rows = [(str(exc),)]
    if rows != [("ok",)]:
        raise StartupError(
            f"the database {path} is damaged (SQLite quick_check: {rows[0][0]}); stop and "
            "restore it from a backup (docs/operations.md), or move it aside to start empty")


def production_checks(environ: Mapping[str, str]) -> dict[str, Any]:
    """Every check for gunicorn's master; the settings when all pass."""
    require_public_url(environ)
    try:
        config = load_config(environ)
        check_database(config["DATABASE_FILE"])
        if config.get("DATABASE_URL"):  # reachable now, not first at a worker's first request
            open_store(config).close()
        load_or_create_server_key(config["SERVER_KEY_FILE"], config["SERVER_NAME"])
    except (ConfigError, ServerKeyError, StoreUnavailable) as exc:
        raise StartupError(str(exc)) from exc
    return config
