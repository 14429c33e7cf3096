"""The outbox's tables (sync/upload/outbox.py), as migrations applied in order on open."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


def _migration_1(db: sqlite_utils.Database) -> None:
    db.table("encounters").create(
        {"id": str, "started_at": str, "origin": str, "on_server": int, "seen_at": str},
        pk="id", not_null={"started_at", "origin"}, defaults={"on_server": 0},
    )
    db.table("chunks").create(
        {"encounter": str, "stream": str, "seq": int, "final": int, "size": int, "sha256": str,
         "descriptor": str, "body": bytes, "state": str, "priority": int, "attempts": int,
         "next_try": float, "last_error": str, "sealed_at": str, "acknowledged_at": str},
        pk=("encounter", "stream", "seq"),
        not_null={"final", "size", "sha256", "descriptor", "body", "state", "priority"},
        defaults={"attempts": 0, "next_try": 0.0},
    )
    db.table("chunks").create_index(["state", "priority", "sealed_at", "seq"])
    db.table("receipts").create(
        {"encounter": str, "stream": str, "seq": int, "leaf_index": int, "tree_size": int,
         "checkpoint": str, "inclusion_proof": str, "received_at": str, "verified_at": str},
        pk=("encounter", "stream", "seq"),
    )
    # Checkpoints this device verified for each encounter; all are mutually consistent.
    db.table("checkpoints").create(
        {"encounter": str, "size": int, "root": str, "note": str}, pk=("encounter", "size"),
    )
    # Trusted contacts' keys, pinned after out-of-band verification (filled by issue 4).
    db.table("contacts").create(
        {"id": str, "name": str, "policy": str, "check_in_minutes": int, "recipient": str,
         "contact_key": str, "safety_number": str, "pinned_at": str},
        pk="id", not_null={"recipient"},
    )
    db.table("sessions").create(
        {"id": int, "encounter": str, "stream": str, "pid": int, "started_at": str,
         "stopped_at": str},
        pk="id",
    )
    db.table("meta").create({"key": str, "value": str}, pk="key")


def _migration_2(db: sqlite_utils.Database) -> None:
    # Which process is sending an `uploading` chunk: another process may requeue it only once
    # that one is dead (the uploading process hands over before its last uploads settle).
    db.execute("ALTER TABLE chunks ADD COLUMN uploader_pid INTEGER")


FINDINGS_DDL = """
CREATE TABLE findings (
    id INTEGER PRIMARY KEY,
    encounter TEXT NOT NULL,
    kind TEXT NOT NULL,
    held_size INTEGER NOT NULL,
    served_size INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    requeued INTEGER NOT NULL,
    first_missing TEXT,
    held_checkpoint TEXT,
    served_checkpoint TEXT,
    found_at TEXT NOT NULL,
    settled_at TEXT
);
CREATE TABLE retired_checkpoints (
    finding INTEGER NOT NULL REFERENCES findings (id),
    encounter TEXT NOT NULL,
    size INTEGER NOT NULL,
    root TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (finding, size)
);
"""


def _migration_3(db: sqlite_utils.Database) -> None:
    # Tampering this device found (sync/upload/findings.py): kept for good, so `device status`
    # and a report can cite it after the device re-anchored on the server's new log; the
    # checkpoints it had verified before move to retired_checkpoints, signed notes and all.
    for statement in FINDINGS_DDL.split(";"):
        if statement.strip():
            db.execute(statement)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migration_1, _migration_2,
                                                              _migration_3]
