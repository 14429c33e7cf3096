"""The on-device outbox: every sealed chunk is committed here before any network is tried.

One SQLite file (WAL, synchronous=FULL) in the state folder, reached through sqlite-utils. A
chunk moves sealed -> queued -> uploading -> acknowledged:

- sealed: durable on the phone; its encounter does not exist on the server yet.
- queued: ready to send (the encounter exists, or the uploader will create it first).
- uploading: a PUT is in flight (from process `uploader_pid`); a process that dies leaves it
  here, and the next uploader puts it back to queued (`requeue_interrupted`).
- acknowledged: the server's receipt verified (signature, inclusion, consistency). Only then.

Every write is one short IMMEDIATE transaction, so several processes (a `record` and a `sync`)
may share the file; the connection is also guarded by a lock so uploader threads can share it.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from sync.device.localdb import immediate, open_database
from sync.upload.outbox_schema import MIGRATIONS

SEALED, QUEUED, UPLOADING, ACKNOWLEDGED = "sealed", "queued", "uploading", "acknowledged"
# Order of sending (DESIGN.md): the event log (and its addenda) first, then audio, then video,
# then anything else.
STREAM_PRIORITY = {"log": 0, "addenda": 0, "audio": 1, "video": 2}


def stream_priority(stream: str) -> int:
    return STREAM_PRIORITY.get(stream, 3)


@dataclass(frozen=True)
class ChunkKey:
    encounter: str
    stream: str
    seq: int

    def __str__(self) -> str:
        return f"{self.encounter}/{self.stream}/{self.seq}"


@dataclass(frozen=True)
class SealedChunk:
    """A chunk as the recorder made it: the age file and its signed descriptor note."""

    key: ChunkKey
    final: bool
    body: bytes
    descriptor: str
    sha256: str
    sealed_at: str


@dataclass(frozen=True)
class OutboxChunk:
    key: ChunkKey
    final: bool
    body: bytes
    descriptor: str
    sha256: str
    state: str
    attempts: int




class Outbox:
    """The outbox database of one state folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = open_database(self.path)
        self._lock = threading.RLock()
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def _tx(self) -> AbstractContextManager[sqlite_utils.Database]:
        return immediate(self.db, self._lock)

    def transaction(self) -> AbstractContextManager[sqlite_utils.Database]:
        """One IMMEDIATE transaction for the outbox's companions (sync/upload/findings.py)."""
        return self._tx()

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY)")
            done = {row[0] for row in db.execute("SELECT version FROM migrations").fetchall()}
            for version, migration in enumerate(MIGRATIONS, start=1):
                if version not in done:
                    migration(db)
                    db.execute("INSERT INTO migrations (version) VALUES (?)", [version])

    def _query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, params))

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", [key])
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    # -- encounters ------------------------------------------------------------------------
    def add_encounter(self, encounter_id: str, started_at: str, origin: str = "local",
                      on_server: bool = False) -> bool:
        """Remember an encounter; True if it was new here."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO encounters (id, started_at, origin, on_server, seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [encounter_id, started_at, origin, int(on_server), now_rfc3339()],
            )
            if on_server:
                db.execute("UPDATE encounters SET on_server = 1 WHERE id = ?", [encounter_id])
            return cur.rowcount == 1

    def encounter(self, encounter_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM encounters WHERE id = ?", [encounter_id])
        return rows[0] if rows else None

    def encounters_to_create(self) -> list[dict[str, Any]]:
        """Local encounters not yet created on the server that have something to send."""
        return self._query(
            "SELECT * FROM encounters e WHERE on_server = 0 AND EXISTS (SELECT 1 FROM chunks c"
            " WHERE c.encounter = e.id AND c.state != ?) ORDER BY started_at", [ACKNOWLEDGED])

    def mark_encounter_created(self, encounter_id: str) -> None:
        """The server has the encounter: its sealed chunks become sendable."""
        with self._tx() as db:
            db.execute("UPDATE encounters SET on_server = 1 WHERE id = ?", [encounter_id])
            db.execute("UPDATE chunks SET state = ? WHERE encounter = ? AND state = ?",
                       [QUEUED, encounter_id, SEALED])

    def mark_encounter_missing(self, encounter_id: str) -> None:
        """The server does not know the encounter after all (e.g. restored from a backup)."""
        with self._tx() as db:
            db.execute("UPDATE encounters SET on_server = 0 WHERE id = ?", [encounter_id])

    # -- recording ---------------------------------------------------------------------------
    def next_seq(self, encounter_id: str, stream: str) -> int:
        rows = self._query("SELECT MAX(seq) AS top FROM chunks WHERE encounter = ? AND stream = ?",
                           [encounter_id, stream])
        top = rows[0]["top"]
        return 0 if top is None else int(top) + 1

    def stream_closed(self, encounter_id: str, stream: str) -> bool:
        rows = self._query("SELECT 1 FROM chunks WHERE encounter = ? AND stream = ? AND final = 1",
                           [encounter_id, stream])
        return bool(rows)

    def add_chunk(self, chunk: SealedChunk) -> None:
        """Commit a sealed chunk; durable when this returns (before any network is tried)."""
        with self._tx() as db:
            self._insert_chunk(db, chunk)

    def _insert_chunk(self, db: sqlite_utils.Database, chunk: SealedChunk) -> None:
        row = db.execute("SELECT on_server FROM encounters WHERE id = ?",
                         [chunk.key.encounter]).fetchone()
        state = QUEUED if row and row[0] else SEALED
        db.execute(
            "INSERT INTO chunks (encounter, stream, seq, final, size, sha256, descriptor, body,"
            " state, priority, sealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [chunk.key.encounter, chunk.key.stream, chunk.key.seq, int(chunk.final),
             len(chunk.body), chunk.sha256, chunk.descriptor, chunk.body, state,
             stream_priority(chunk.key.stream), chunk.sealed_at])

    def add_log_entry(self, encounter_id: str, seal: Callable[[int, bool], SealedChunk],
                      closing_session: int | None = None,
                      alive: Callable[[int], bool] = lambda pid: True,
                      stream: str = "log") -> SealedChunk | None:
        """Append to the encounter's `log` stream at its next seq, atomically across processes.

        When `closing_session` is given, that recording session ends here, and the entry is the
        log's final chunk unless another session of the encounter is still recording. Returns
        None (writing nothing) if the log was already closed. (`stream`: the event log's
        `addenda` stream takes notes made after the log closed, sync/upload/notes.py.)
        """
        with self._tx() as db:
            if db.execute("SELECT 1 FROM chunks WHERE encounter = ? AND stream = ? AND"
                          " final = 1", [encounter_id, stream]).fetchone():
                return None
            final = False
            if closing_session is not None:
                db.execute("UPDATE sessions SET stopped_at = ? WHERE id = ?",
                           [now_rfc3339(), closing_session])
                others = db.execute("SELECT pid FROM sessions WHERE encounter = ? AND id != ?"
                                    " AND stopped_at IS NULL",
                                    [encounter_id, closing_session]).fetchall()
                final = not any(alive(int(row[0])) for row in others)
            top = db.execute("SELECT MAX(seq) FROM chunks WHERE encounter = ? AND stream = ?",
                             [encounter_id, stream]).fetchone()[0]
            chunk = seal(0 if top is None else int(top) + 1, final)
            self._insert_chunk(db, chunk)
            return chunk

    def open_session(self, encounter_id: str, stream: str, pid: int) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO sessions (encounter, stream, pid, started_at)"
                             " VALUES (?, ?, ?, ?)", [encounter_id, stream, pid, now_rfc3339()])
            return int(cur.lastrowid or 0)

    # -- uploading ---------------------------------------------------------------------------
    def requeue_interrupted(self, alive: Callable[[int], bool] = lambda pid: False) -> int:
        """Chunks a dead process left `uploading` go back to the queue; returns how many.
        A chunk whose uploading process is `alive` stays: that process still sends it."""
        with self._tx() as db:
            pids = [row[0] for row in db.execute("SELECT DISTINCT uploader_pid FROM chunks"
                                                 " WHERE state = ?", [UPLOADING]).fetchall()]
            dead = [pid for pid in pids if pid is None or not alive(int(pid))]
            return sum(db.execute("UPDATE chunks SET state = ? WHERE state = ? AND"
                                  " uploader_pid IS ?", [QUEUED, UPLOADING, pid]).rowcount
                       for pid in dead)

    def claim(self, limit: int, now: float, exclude: set[ChunkKey], encounters: set[str],
              max_bytes: int = 16 * 1024 * 1024,
              priority: int | None = None) -> list[OutboxChunk]:
        """Take up to `limit` due queued chunks of `encounters` (at most `max_bytes` of bodies,
        at least one), most urgent first (only of `priority`, if given), and mark them
        uploading."""
        lowest, highest = (0, 1 << 30) if priority is None else (priority, priority)
        with self._tx() as db:
            rows = db.execute(
                "SELECT encounter, stream, seq, size FROM chunks WHERE state = ? AND priority"
                " BETWEEN ? AND ? AND next_try <= ? ORDER BY priority, sealed_at, seq LIMIT ?",
                [QUEUED, lowest, highest, now, limit + len(exclude)]).fetchall()
            picked: list[ChunkKey] = []
            total = 0
            for encounter, stream, seq, size in rows:
                key = ChunkKey(encounter, stream, seq)
                if key in exclude or encounter not in encounters:
                    continue
                if len(picked) == limit or (picked and total + size > max_bytes):
                    break
                picked.append(key)
                total += size
            chunks = []
            for key in picked:
                db.execute("UPDATE chunks SET state = ?, uploader_pid = ? WHERE encounter = ?"
                           " AND stream = ? AND seq = ?", [UPLOADING, os.getpid(), *_params(key)])
                row = next(db.query("SELECT * FROM chunks WHERE encounter = ? AND stream = ?"
                                    " AND seq = ?", _params(key)))
                chunks.append(_chunk(row))
            return chunks

    def unacknowledged(self, encounter_id: str) -> set[tuple[str, int]]:
        rows = self._query("SELECT stream, seq FROM chunks WHERE encounter = ? AND state != ?",
                           [encounter_id, ACKNOWLEDGED])
        return {(str(r["stream"]), int(r["seq"])) for r in rows}

    def waiting(self, now: float, encounters: set[str]) -> dict[int, int]:
        """priority -> how many due queued chunks of `encounters` wait to be sent (a read only:
        the uploader looks before it claims)."""
        rows = self._query("SELECT priority, encounter, COUNT(*) AS n FROM chunks WHERE"
                           " state = ? AND next_try <= ? GROUP BY priority, encounter",
                           [QUEUED, now])
        found: dict[int, int] = {}
        for row in rows:
            if row["encounter"] in encounters:
                found[int(row["priority"])] = found.get(int(row["priority"]), 0) + int(row["n"])
        return found

    def recording_streams(self, alive: Callable[[int], bool]) -> set[str]:
        """Streams some live process is recording right now (more of them is coming)."""
        rows = self._query("SELECT DISTINCT stream, pid FROM sessions WHERE stopped_at IS NULL")
        return {str(r["stream"]) for r in rows if alive(int(r["pid"]))}

    def data_version(self) -> int:
        """Changes whenever another connection (another process) commits to the file: a
        cheap way for the uploading process to notice chunks that others queued."""
        with self._lock:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def encounters_with_queued(self) -> list[str]:
        rows = self._query("SELECT DISTINCT encounter FROM chunks WHERE state = ?", [QUEUED])
        return [str(r["encounter"]) for r in rows]

    def next_due(self) -> float | None:
        """When the earliest queued chunk may be tried again (None if none is queued)."""
        rows = self._query("SELECT MIN(next_try) AS due FROM chunks WHERE state = ?", [QUEUED])
        due = rows[0]["due"]
        return None if due is None else float(due)

    def acknowledge(self, acks: list[tuple[ChunkKey, dict[str, Any]]],
                    checkpoints: dict[str, dict[int, tuple[bytes, str]]] | None = None) -> None:
        """Record verified receipts (and the checkpoints they proved) and mark the chunks
        acknowledged, all in one transaction."""
        stamp = now_rfc3339()
        with self._tx() as db:
            for encounter, roots in (checkpoints or {}).items():
                self._insert_checkpoints(db, encounter, roots)
            for key, receipt in acks:
                db.execute(
                    "INSERT OR REPLACE INTO receipts (encounter, stream, seq, leaf_index,"
                    " tree_size, checkpoint, inclusion_proof, received_at, verified_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [*_params(key), receipt["leaf_index"], receipt["tree_size"],
                     receipt["checkpoint"], json.dumps(receipt["inclusion_proof"]),
                     receipt.get("received_at"), stamp])
                db.execute("UPDATE chunks SET state = ?, acknowledged_at = ?, last_error = NULL"
                           " WHERE encounter = ? AND stream = ? AND seq = ?",
                           [ACKNOWLEDGED, stamp, *_params(key)])

    def release(self, key: ChunkKey, error: str | None, next_try: float = 0.0,
                count_attempt: bool = True) -> None:
        """Put an unacknowledged chunk back in the queue, remembering why."""
        with self._tx() as db:
            db.execute("UPDATE chunks SET state = ?, last_error = ?, next_try = ?,"
                       " attempts = attempts + ? WHERE encounter = ? AND stream = ? AND seq = ?"
                       " AND state != ?",
                       [QUEUED, error, next_try, int(count_attempt), *_params(key), ACKNOWLEDGED])

    def requeue_acknowledged(self, keys: list[ChunkKey]) -> None:
        """Queue acknowledged chunks again (the server lost them: sync/upload/rollback.py); their
        bodies are still here, so the next drain uploads them again."""
        with self._tx() as db:
            for key in keys:
                db.execute("UPDATE chunks SET state = ?, next_try = 0 WHERE encounter = ? AND"
                           " stream = ? AND seq = ? AND state = ?",
                           [QUEUED, *_params(key), ACKNOWLEDGED])

    # -- receipts and checkpoints -------------------------------------------------------------
    def receipt(self, key: ChunkKey) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM receipts WHERE encounter = ? AND stream = ? AND"
                           " seq = ?", _params(key))
        if not rows:
            return None
        row = rows[0]
        row["inclusion_proof"] = json.loads(row["inclusion_proof"])
        return row

    def checkpoints(self, encounter_id: str) -> dict[int, bytes]:
        rows = self._query("SELECT size, root FROM checkpoints WHERE encounter = ?",
                           [encounter_id])
        return {int(r["size"]): base64.b64decode(r["root"]) for r in rows}

    def add_checkpoints(self, encounter_id: str, roots: dict[int, tuple[bytes, str]]) -> None:
        """Remember checkpoints proven consistent with every one already stored."""
        with self._tx() as db:
            self._insert_checkpoints(db, encounter_id, roots)

    @staticmethod
    def _insert_checkpoints(db: sqlite_utils.Database, encounter_id: str,
                            roots: dict[int, tuple[bytes, str]]) -> None:
        for size, (root, note) in roots.items():
            db.execute("INSERT OR IGNORE INTO checkpoints (encounter, size, root, note)"
                       " VALUES (?, ?, ?, ?)",
                       [encounter_id, size, base64.b64encode(root).decode(), note])

    # -- contacts ------------------------------------------------------------------------------
    def contact_recipients(self) -> list[str]:
        """age recipients of the pinned trusted contacts (verified out of band, issue 4)."""
        rows = self._query("SELECT recipient FROM contacts WHERE pinned_at IS NOT NULL"
                           " ORDER BY id")
        return [str(r["recipient"]) for r in rows]

    # -- reporting -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) AS n FROM chunks GROUP BY state")
        return {str(r["state"]): int(r["n"]) for r in rows}

    def remaining(self) -> int:
        rows = self._query("SELECT COUNT(*) AS n FROM chunks WHERE state != ?", [ACKNOWLEDGED])
        return int(rows[0]["n"])

    def chunks(self, encounter_id: str | None = None) -> list[dict[str, Any]]:
        """Every chunk row without its body (for reports and tests)."""
        rows = self._query(
            "SELECT encounter, stream, seq, final, size, sha256, state, attempts, last_error,"
            " sealed_at, acknowledged_at FROM chunks ORDER BY encounter, stream, seq")
        return [r for r in rows if encounter_id in (None, r["encounter"])]

    def chunk(self, key: ChunkKey) -> OutboxChunk | None:
        rows = self._query("SELECT * FROM chunks WHERE encounter = ? AND stream = ? AND seq = ?",
                           _params(key))
        return _chunk(rows[0]) if rows else None


def _key(row: dict[str, Any]) -> ChunkKey:
    return ChunkKey(str(row["encounter"]), str(row["stream"]), int(row["seq"]))


def _params(key: ChunkKey) -> list[Any]:
    return [key.encounter, key.stream, key.seq]


def _chunk(row: dict[str, Any]) -> OutboxChunk:
    return OutboxChunk(key=_key(row), final=bool(row["final"]), body=bytes(row["body"]),
                       descriptor=str(row["descriptor"]), sha256=str(row["sha256"]),
                       state=str(row["state"]), attempts=int(row["attempts"] or 0))


def now_rfc3339(at: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds, the wire form of every time (docs/protocol.md)."""
    stamp = time.time() if at is None else at
    millis = int(stamp * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"
