"""Queries about trusted contacts: invitations, contacts, alert/safe marks, releases, reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.store.changes import Change
from server.store.notify import ContactChannels
from server.store.sql import Connection

PENDING, ACTIVE, REVOKED = "pending", "active", "revoked"
ALERT, SAFE = "alert", "safe"


@dataclass(frozen=True)
class ContactInvitation:
    invitation_id: str
    account_id: str
    created_by: str
    name: str
    policy: str
    check_in_minutes: int | None
    owner_recipient: str
    owner_device_keys: list[str]
    owner_proof: str
    expires_at: str
    created_at: str
    withdrawn_at: str | None = None

    def row(self) -> dict[str, Any]:
        return {**vars(self), "owner_device_keys": json.dumps(self.owner_device_keys)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ContactInvitation:
        return cls(**{**row, "owner_device_keys": json.loads(row["owner_device_keys"])})


@dataclass(frozen=True)
class Contact:
    contact_id: str
    account_id: str
    invitation_id: str
    name: str
    policy: str
    check_in_minutes: int | None
    age_recipient: str
    contact_key: str
    proof: str
    status: str  # pending (accepted, not yet confirmed by the owner) | active | revoked
    notify_webhook_url: str | None
    notify_email: str | None
    webhook_secret: str | None
    accepted_at: str
    confirmed_at: str | None
    revoked_at: str | None
    updated_at: str


@dataclass(frozen=True)
class Mark:
    """An alert raised, or a safe mark made, by one of the owner's devices (server time)."""

    encounter_id: str
    kind: str  # alert | safe
    at: str
    device_id: str


@dataclass(frozen=True)
class AccessEntry:
    encounter_id: str
    contact_id: str
    what: str
    at: str
    leaf_index: int


def _rows(db: Connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    return db.query(sql, params)


class ContactQueries:
    db: Connection

    # -- invitations --------------------------------------------------------------------------
    def insert_contact_invitation(self, invitation: ContactInvitation) -> None:
        self.db.insert("contact_invitations", invitation.row())

    def contact_invitation(self, invitation_id: str) -> ContactInvitation | None:
        rows = _rows(self.db, "SELECT * FROM contact_invitations WHERE invitation_id = ?",
                     [invitation_id])
        return ContactInvitation.from_row(rows[0]) if rows else None

    # -- contacts -----------------------------------------------------------------------------
    def insert_contact(self, contact: Contact) -> None:
        self.db.insert("contacts", vars(contact))

    def contact(self, contact_id: str) -> Contact | None:
        rows = _rows(self.db, "SELECT * FROM contacts WHERE contact_id = ?", [contact_id])
        return Contact(**rows[0]) if rows else None

    def contact_by_invitation(self, invitation_id: str) -> Contact | None:
        rows = _rows(self.db, "SELECT * FROM contacts WHERE invitation_id = ?", [invitation_id])
        return Contact(**rows[0]) if rows else None

    def contacts_of(self, account_id: str, status: str | None = None) -> list[Contact]:
        sql = "SELECT * FROM contacts WHERE account_id = ?"
        params: list[Any] = [account_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        return [Contact(**row) for row in _rows(self.db, sql + " ORDER BY accepted_at, "
                                                "contact_id", params)]

    def update_contact(self, contact_id: str, **values: Any) -> None:
        allowed = {"name", "policy", "check_in_minutes", "status", "confirmed_at",
                   "revoked_at", "updated_at"}
        if not values or set(values) - allowed:
            raise ValueError(f"cannot update contact columns {sorted(set(values) - allowed)}")
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(f"UPDATE contacts SET {assignments} WHERE contact_id = ?",  # noqa: S608
                        [*values.values(), contact_id])

    def contact_channels(self, contact_id: str) -> ContactChannels | None:
        """Where the notification worker reaches this contact (server/worker.py)."""
        found = self.contact(contact_id)
        if found is None:
            return None
        return ContactChannels(webhook_url=found.notify_webhook_url,
                               webhook_secret=found.webhook_secret, email=found.notify_email,
                               active=found.status == ACTIVE)

    def active_contacts(self, policy: str | None = None) -> list[Contact]:
        sql, params = "SELECT * FROM contacts WHERE status = ?", [ACTIVE]
        if policy is not None:
            sql += " AND policy = ?"
            params.append(policy)
        return [Contact(**row) for row in _rows(self.db, sql + " ORDER BY contact_id", params)]

    # -- alert and safe marks -----------------------------------------------------------------
    def insert_mark(self, mark: Mark) -> None:
        self.db.insert("encounter_marks", vars(mark))

    def marks_of(self, encounter_id: str) -> list[Mark]:
        rows = _rows(self.db, "SELECT encounter_id, kind, at, device_id FROM encounter_marks "
                     "WHERE encounter_id = ? ORDER BY id", [encounter_id])
        return [Mark(**row) for row in rows]

    # -- release announcements ------------------------------------------------------------------
    def announced_encounters(self, contact_id: str) -> set[str]:
        rows = _rows(self.db, "SELECT encounter_id FROM releases WHERE contact_id = ?",
                     [contact_id])
        return {str(row["encounter_id"]) for row in rows}

    def insert_release(self, contact_id: str, encounter_id: str, released_at: str, reason: str,
                       announced_at: str) -> None:
        self.db.execute(
            "INSERT INTO releases (contact_id, encounter_id, released_at, reason, announced_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [contact_id, encounter_id, released_at, reason, announced_at],
        )

    # -- the contact's changes feed -----------------------------------------------------------
    def insert_contact_change(self, account_id: str, contact_id: str, kind: str, at: str,
                              encounter_id: str) -> None:
        self.db.serialize(f"changes:{account_id}")
        self.db.execute(
            "INSERT INTO changes (account_id, contact_id, kind, encounter_id, at) "
            "VALUES (?, ?, ?, ?, ?)", [account_id, contact_id, kind, encounter_id, at],
        )

    def contact_change_candidates(self, account_id: str, contact_id: str, after_id: int,
                                  kinds: tuple[str, ...], limit: int) -> list[Change]:
        """The contact's own rows and the account's rows of `kinds`, after `after_id`."""
        marks = ", ".join("?" for _ in kinds)
        sql = ("SELECT id, kind, encounter_id, stream, seq, at FROM changes "  # noqa: S608
               "WHERE account_id = ? AND id > ? AND (contact_id = ? OR "
               f"(contact_id IS NULL AND kind IN ({marks}))) ORDER BY id LIMIT ?")
        rows = _rows(self.db, sql, [account_id, after_id, contact_id, *kinds, limit])
        return [Change(**row) for row in rows]

    # -- access log ---------------------------------------------------------------------------
    def insert_access(self, entry: AccessEntry) -> None:
        self.db.insert("access_log", vars(entry))

    def access_log_of(self, encounter_id: str) -> list[AccessEntry]:
        rows = _rows(self.db, "SELECT encounter_id, contact_id, what, at, leaf_index "
                     "FROM access_log WHERE encounter_id = ? ORDER BY id", [encounter_id])
        return [AccessEntry(**row) for row in rows]
