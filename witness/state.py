"""The witness's durable state: its key and, per log origin, the latest checkpoint it cosigned.

SQLite with synchronous=FULL: a commit is on disk before add-checkpoint answers, so a witness
killed right after cosigning still refuses anything inconsistent with what it signed. The check
of the old size and the update run in one BEGIN IMMEDIATE transaction (c2sp.org/tlog-witness
warns of the race where two requests interleave and roll the stored size back).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from crypto.signing import generate_signing_key, key_name

KEY_FILE = "witness.key"
DB_FILE = "witness.sqlite3"
T = TypeVar("T")


@dataclass(frozen=True)
class Latest:
    size: int
    root: bytes


def load_or_create_key(state_dir: Path, name: str | None) -> str:
    """The witness's signing key from `state_dir`, made (with `name`) on first use."""
    path = state_dir / KEY_FILE
    if path.exists():
        key = path.read_text(encoding="ascii").strip()
        if name is not None and key_name(key) != name:
            raise ValueError(f"{path} holds the key of witness {key_name(key)!r}, not {name!r}")
        return key
    if name is None:
        raise ValueError(f"no witness key in {state_dir}: run `safehold witness keygen "
                         f"--state {state_dir} --name NAME` first, or pass --name")
    state_dir.mkdir(parents=True, exist_ok=True)
    key = generate_signing_key(name)
    _write_private(path, key + "\n")
    return key


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class WitnessState:
    """One connection per call: the Flask server answers requests on several threads."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_FILE
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS latest (origin TEXT PRIMARY KEY, "
                       "size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL, "
                       "updated_at REAL NOT NULL)")
            # Evidence of misbehaviour: validly signed checkpoints that it refused.
            db.execute("CREATE TABLE IF NOT EXISTS refused (id INTEGER PRIMARY KEY, "
                       "origin TEXT NOT NULL, reason TEXT NOT NULL, body TEXT NOT NULL, "
                       "at REAL NOT NULL)")

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        return db

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = self._open()
        try:
            yield db
        finally:
            db.close()

    def latest(self, origin: str) -> Latest | None:
        with self._connect() as db:
            row = db.execute("SELECT size, root FROM latest WHERE origin = ?",
                             [origin]).fetchone()
        return Latest(int(row[0]), bytes(row[1])) if row else None

    def update(self, origin: str, decide: Callable[[Latest | None], T],
               new: Callable[[T], tuple[int, bytes, str] | None]) -> T:
        """Atomically: read the origin's latest, `decide`, and store `new(decision)` if any."""
        db = self._open()
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT size, root FROM latest WHERE origin = ?",
                             [origin]).fetchone()
            decision = decide(Latest(int(row[0]), bytes(row[1])) if row else None)
            stored = new(decision)
            if stored is not None:
                size, root, note = stored
                db.execute("INSERT INTO latest (origin, size, root, note, updated_at) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT(origin) DO UPDATE SET "
                           "size = excluded.size, root = excluded.root, note = excluded.note, "
                           "updated_at = excluded.updated_at",
                           [origin, size, root, note, time.time()])
            db.execute("COMMIT")
            return decision
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def record_refusal(self, origin: str, reason: str, body: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO refused (origin, reason, body, at) VALUES (?, ?, ?, ?)",
                       [origin, reason, body, time.time()])
