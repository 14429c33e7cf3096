"""Queries of the notification outbox, and of deletion requests.

A notification is one message for one contact (kind, encounter, time). The worker expands it
into one delivery per channel the contact has (webhook, email) and works each delivery off on
its own: claimed with a lease (so two workers never send the same one at once), marked
delivered only after the receiver accepted it, otherwise retried later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from server.store.sql import Connection


@dataclass(frozen=True)
class Notification:
    notification_id: str  # the idempotency id receivers drop duplicates by
    contact_id: str
    kind: str
    encounter_id: str | None
    at: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    notification_id: str
    channel: str  # "webhook" | "email"
    target: str  # the URL or address as it was when the notification was expanded
    state: str  # "pending" | "delivered" | "failed"
    attempts: int
    next_attempt_at: float
    last_error: str | None
    delivered_at: str | None


@dataclass(frozen=True)
class ContactChannels:
    """Where one contact wants to hear from the server; None when it has no such channel."""

    webhook_url: str | None
    webhook_secret: str | None
    email: str | None
    active: bool


def create_notification_tables(db: Database) -> None:
    db.table("notifications").create(
        {"id": int, "notification_id": str, "contact_id": str, "kind": str, "encounter_id": str,
         "at": str, "details": str, "dedupe_key": str, "created_at": float, "expanded": int},
        pk="id", not_null=["notification_id", "contact_id", "kind", "at", "created_at",
                           "expanded"],
    )
    db.table("notifications").create_index(["notification_id"], unique=True)
    db.table("notifications").create_index(["dedupe_key"], unique=True)  # NULLs never clash
    db.table("notifications").create_index(["expanded", "id"])
    db.table("notifications").create_index(["contact_id", "id"])
    db.table("deliveries").create(
        {"notification_id": str, "channel": str, "target": str, "state": str, "attempts": int,
         "next_attempt_at": float, "lease_until": float, "last_error": str,
         "delivered_at": str},
        pk=("notification_id", "channel"),
        not_null=["target", "state", "attempts", "next_attempt_at"],
    )
    db.table("deliveries").create_index(["state", "next_attempt_at"])


def _notification(row: dict[str, Any]) -> Notification:
    return Notification(row["notification_id"], row["contact_id"], row["kind"],
                        row["encounter_id"], row["at"], json.loads(row["details"] or "{}"))


_DELIVERY_COLUMNS = ("notification_id, channel, target, state, attempts, next_attempt_at, "
                     "last_error, delivered_at")


class NotifyQueries:
    db: Connection

    def insert_notification(self, notification: Notification, created_at: float,
                            dedupe_key: str | None) -> bool:
        """False (and nothing written) when `dedupe_key` was used before."""
        inserted = self.db.execute(
            "INSERT INTO notifications (notification_id, contact_id, kind, "
            "encounter_id, at, details, dedupe_key, created_at, expanded) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
            [notification.notification_id, notification.contact_id, notification.kind,
             notification.encounter_id, notification.at,
             json.dumps(notification.details, sort_keys=True), dedupe_key, created_at],
        )
        return inserted == 1

    def notification(self, notification_id: str) -> Notification | None:
        rows = self.db.query("SELECT * FROM notifications WHERE notification_id = ?",
                             [notification_id])
        return _notification(rows[0]) if rows else None

    def notifications_for(self, contact_id: str) -> list[Notification]:
        rows = self.db.query("SELECT * FROM notifications WHERE contact_id = ? ORDER BY id",
                             [contact_id])
        return [_notification(row) for row in rows]

    def told_of(self, contact_id: str, encounter_id: str, kinds: tuple[str, ...]) -> bool:
        """Whether the contact was sent a notification of one of `kinds` about the encounter."""
        marks = ",".join("?" * len(kinds))
        row = self.db.one(
            f"SELECT 1 FROM notifications WHERE contact_id = ? AND encounter_id = ? "  # noqa: S608
            f"AND kind IN ({marks}) LIMIT 1", [contact_id, encounter_id, *kinds])
        return row is not None

    def queue_depth(self, now: float) -> dict[str, int]:
        """What `safehold worker` has still to do (for /metrics)."""
        def count(sql: str, params: list[Any]) -> int:
            return int(self.db.scalar(sql, params))

        return {
            "notifications": count("SELECT COUNT(*) FROM notifications WHERE expanded = 0", []),
            "deliveries": count("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'", []),
            "deletions": count("SELECT COUNT(*) FROM deletion_requests WHERE (state = "
                               "'scheduled' AND due_ts <= ?) OR state = 'deleting'", [now]),
        }

    def unexpanded_notifications(self, limit: int) -> list[Notification]:
        rows = self.db.query("SELECT * FROM notifications WHERE expanded = 0 ORDER BY id "
                             "LIMIT ?", [limit])
        return [_notification(row) for row in rows]

    def expand_notification(self, notification_id: str, targets: list[tuple[str, str]],
                            now: float) -> None:
        """One pending delivery per (channel, target), due now; the notification is done."""
        for channel, target in targets:
            self.db.execute(
                "INSERT INTO deliveries (notification_id, channel, target, state, attempts, "
                "next_attempt_at) VALUES (?, ?, ?, 'pending', 0, ?) ON CONFLICT DO NOTHING",
                [notification_id, channel, target, now],
            )
        self.db.execute("UPDATE notifications SET expanded = 1 WHERE notification_id = ?",
                        [notification_id])

    def claim_due_deliveries(self, now: float, lease_until: float,
                             limit: int) -> list[Delivery]:
        """Pending deliveries whose time has come and that no other worker holds; leased."""
        # Oldest due first, and in the order the events happened among equals.
        # Rows another worker is claiming right now are skipped, not waited for (PostgreSQL;
        # SQLite's single writer already serialises claims).
        rows = self.db.query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries "  # noqa: S608
            "JOIN notifications USING (notification_id) WHERE state = 'pending' "
            "AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
            "ORDER BY next_attempt_at, notifications.id, channel LIMIT ?"
            + self.db.skip_locked("deliveries"), [now, now, limit],
        )
        for row in rows:
            self.db.execute("UPDATE deliveries SET lease_until = ? WHERE notification_id = ? "
                            "AND channel = ?", [lease_until, row["notification_id"],
                                                row["channel"]])
        return [Delivery(**row) for row in rows]

    def mark_delivered(self, delivery: Delivery, delivered_at: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, "
            "delivered_at = ?, lease_until = NULL, last_error = NULL "
            "WHERE notification_id = ? AND channel = ?",
            [delivered_at, delivery.notification_id, delivery.channel],
        )

    def mark_attempt_failed(self, delivery: Delivery, error: str, next_attempt_at: float,
                            give_up: bool) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ?, "
            "next_attempt_at = ?, lease_until = NULL WHERE notification_id = ? AND channel = ?",
            ["failed" if give_up else "pending", error[:500], next_attempt_at,
             delivery.notification_id, delivery.channel],
        )

    def deliveries_of(self, notification_id: str) -> list[Delivery]:
        rows = self.db.query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries "  # noqa: S608
            "WHERE notification_id = ? ORDER BY channel", [notification_id])
        return [Delivery(**row) for row in rows]

    def next_delivery_due(self) -> float | None:
        due = self.db.scalar("SELECT MIN(next_attempt_at) FROM deliveries "
                             "WHERE state = 'pending'")
        return float(due) if due is not None else None
