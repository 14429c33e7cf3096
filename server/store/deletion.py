"""Queries about deletion requests and the tombstones deleted encounters leave behind.

A request moves scheduled -> held (a contact stopped it) | cancelled (the owner withdrew it) |
deleting (the worker began: the encounter reads as deleted from now on) -> done. At most one
request per encounter is open (scheduled or held) at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlite_utils import Database

from server.store.sql import Connection

OPEN_STATES = ("scheduled", "held")


@dataclass(frozen=True)
class DeletionRequest:
    request_id: str
    encounter_id: str
    account_id: str
    requested_by: str
    requested_at: str
    due_at: str
    due_ts: float
    state: str  # scheduled | held | cancelled | deleting | done
    held_by: str | None = None
    held_at: str | None = None
    cancelled_at: str | None = None
    done_at: str | None = None


@dataclass(frozen=True)
class Tombstone:
    """What stays of a deleted encounter: who owned it, when it went, its last checkpoint."""

    encounter_id: str
    account_id: str
    request_id: str
    deleted_at: str
    tree_size: int
    checkpoint: str


def create_deletion_tables(db: Database) -> None:
    db.table("deletion_requests").create(
        {"request_id": str, "encounter_id": str, "account_id": str, "requested_by": str,
         "requested_at": str, "due_at": str, "due_ts": float, "state": str, "held_by": str,
         "held_at": str, "cancelled_at": str, "done_at": str},
        pk="request_id",
        not_null=["encounter_id", "account_id", "requested_by", "requested_at", "due_at",
                  "due_ts", "state"],
        foreign_keys=[("encounter_id", "encounters", "encounter_id")],
    )
    db.table("deletion_requests").create_index(["encounter_id", "state"])
    db.table("deletion_requests").create_index(["state", "due_ts"])
    db.table("encounter_tombstones").create(
        {"encounter_id": str, "account_id": str, "request_id": str, "deleted_at": str,
         "tree_size": int, "checkpoint": str},
        pk="encounter_id",
        not_null=["account_id", "request_id", "deleted_at", "tree_size", "checkpoint"],
        foreign_keys=[("encounter_id", "encounters", "encounter_id")],
    )


_REQUEST_COLUMNS = ", ".join(field.name for field in fields(DeletionRequest))


def _request(row: dict[str, Any]) -> DeletionRequest:
    return DeletionRequest(**row)


class DeletionQueries:
    db: Connection

    def open_deletion(self, encounter_id: str) -> DeletionRequest | None:
        """The scheduled or held request of the encounter, if there is one."""
        rows = self.db.query(
            f"SELECT {_REQUEST_COLUMNS} FROM deletion_requests WHERE encounter_id = ? "  # noqa: S608
            "AND state IN ('scheduled', 'held') ORDER BY requested_at DESC LIMIT 1",
            [encounter_id])
        return _request(rows[0]) if rows else None

    def latest_deletion(self, encounter_id: str) -> DeletionRequest | None:
        # rowid: the order requests were made in (PostgreSQL's table has a column of that name).
        rows = self.db.query(
            f"SELECT {_REQUEST_COLUMNS} FROM deletion_requests WHERE encounter_id = ? "  # noqa: S608
            "ORDER BY requested_at DESC, rowid DESC LIMIT 1", [encounter_id])
        return _request(rows[0]) if rows else None

    def deletion_request(self, request_id: str) -> DeletionRequest | None:
        rows = self.db.query(f"SELECT {_REQUEST_COLUMNS} FROM deletion_requests "  # noqa: S608
                             "WHERE request_id = ?", [request_id])
        return _request(rows[0]) if rows else None

    def insert_deletion(self, request: DeletionRequest) -> None:
        self.db.insert("deletion_requests", vars(request))

    def set_deletion_state(self, request_id: str, state: str, **stamps: str) -> None:
        """Move a request to `state`, recording e.g. held_by/held_at or cancelled_at."""
        allowed = {"held_by", "held_at", "cancelled_at", "done_at"}
        assert set(stamps) <= allowed, stamps
        assignments = ", ".join(["state = ?"] + [f"{name} = ?" for name in stamps])
        self.db.execute(f"UPDATE deletion_requests SET {assignments} "  # noqa: S608
                        "WHERE request_id = ?", [state, *stamps.values(), request_id])

    def due_deletions(self, now: float, limit: int) -> list[DeletionRequest]:
        """Scheduled requests whose time has come, and ones a worker began but did not end."""
        rows = self.db.query(
            f"SELECT {_REQUEST_COLUMNS} FROM deletion_requests "  # noqa: S608
            "WHERE (state = 'scheduled' AND due_ts <= ?) "
            "OR state = 'deleting' ORDER BY due_ts LIMIT ?", [now, limit])
        return [_request(row) for row in rows]

    def insert_tombstone(self, tombstone: Tombstone) -> None:
        self.db.insert("encounter_tombstones", vars(tombstone), ignore=True)

    def tombstone(self, encounter_id: str) -> Tombstone | None:
        row = self.db.one("SELECT * FROM encounter_tombstones WHERE encounter_id = ?",
                      [encounter_id])
        return Tombstone(**row) if row else None

    def tombstoned_ids(self, account_id: str) -> set[str]:
        rows = self.db.query("SELECT encounter_id FROM encounter_tombstones "
                             "WHERE account_id = ?", [account_id])
        return {str(row["encounter_id"]) for row in rows}

    def blob_keys(self, encounter_id: str) -> list[str]:
        rows = self.db.query("SELECT blob_key FROM chunks WHERE encounter_id = ? "
                             "ORDER BY stream, seq", [encounter_id])
        return [str(row["blob_key"]) for row in rows]

    def erase_encounter_content(self, encounter_id: str) -> None:
        """Drop the chunk rows and log leaves (descriptors); checkpoints and the tombstone
        stay, so what existed up to the deletion can still be shown to have existed."""
        self.db.execute("DELETE FROM chunks WHERE encounter_id = ?", [encounter_id])
        self.db.execute("DELETE FROM log_leaves WHERE encounter_id = ?", [encounter_id])
