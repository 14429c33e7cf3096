"""The owner device's record of the invitations it made and the contact keys it pinned.

Lives in the outbox database of the state folder (its own connection, its own table
`invitations`), beside the outbox's `contacts` table of pinned keys that the recorder seals to
(Outbox.contact_recipients). A key gets into `contacts` only here, and only after the contact's
proof was checked with the invitation secret (sync/people/owner.py): never from the server alone.

The secret is kept only while the invitation waits; once the contact is pinned or refused it is
wiped, so a seized phone holds no secret that could vouch for another key.
"""

from __future__ import annotations

import base64
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from crypto.invitation import InvitationCode, OwnerTerms
from sync.device.localdb import immediate, open_database

WAITING, PINNED, REFUSED, REVOKED = "waiting", "pinned", "refused", "revoked"


@dataclass(frozen=True)
class LocalInvitation:
    invitation_id: str
    secret: bytes | None  # None once resolved
    name: str
    terms: OwnerTerms
    state: str  # waiting | pinned | refused | revoked
    contact_id: str | None
    safety_number: str | None
    problem: str | None


@dataclass(frozen=True)
class PinnedContact:
    contact_id: str
    name: str
    policy: str
    check_in_minutes: int | None
    recipient: str
    contact_key: str
    safety_number: str


@dataclass(frozen=True)
class ShareRecipient:
    """A one-encounter share's recipient, verified and pinned like a contact (never sealed to:
    her chunks are re-wrapped, sync/people/share.py)."""

    contact_id: str
    encounter_id: str
    recipient: str
    name: str = ""
    safety_number: str | None = None


def _terms_json(terms: OwnerTerms) -> str:
    return json.dumps({**vars(terms), "device_keys": list(terms.device_keys)}, sort_keys=True)


def _terms(text: str) -> OwnerTerms:
    data = json.loads(text)
    return OwnerTerms(**{**data, "device_keys": tuple(data["device_keys"])})


def _invitation(row: dict[str, Any]) -> LocalInvitation:
    secret = base64.b64decode(row["secret"]) if row["secret"] else None
    return LocalInvitation(row["invitation_id"], secret, row["name"], _terms(row["terms"]),
                           row["state"], row["contact_id"], row["safety_number"],
                           row["problem"])


class ContactBook:
    def __init__(self, outbox_path: Path) -> None:
        self.db = open_database(outbox_path)
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS invitations (invitation_id TEXT PRIMARY KEY,"
                       " secret TEXT, name TEXT NOT NULL, terms TEXT NOT NULL, state TEXT NOT"
                       " NULL, contact_id TEXT, safety_number TEXT, problem TEXT,"
                       " created_at TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS share_recipients (contact_id TEXT PRIMARY"
                       " KEY, invitation_id TEXT NOT NULL, encounter_id TEXT NOT NULL,"
                       " recipient TEXT NOT NULL, contact_key TEXT NOT NULL)")

    def close(self) -> None:
        self.db.conn.close()

    def _tx(self) -> AbstractContextManager[sqlite_utils.Database]:
        return immediate(self.db)

    # -- invitations ---------------------------------------------------------------------------
    def add_invitation(self, code: InvitationCode, terms: OwnerTerms, name: str,
                       created_at: str) -> None:
        """Durable before the invitation is sent: a lost answer never loses the secret."""
        with self._tx() as db:
            db.execute("INSERT INTO invitations (invitation_id, secret, name, terms, state,"
                       " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       [code.invitation_id, base64.b64encode(code.secret).decode(), name,
                        _terms_json(terms), WAITING, created_at])

    def invitation(self, invitation_id: str) -> LocalInvitation | None:
        rows = list(self.db.query("SELECT * FROM invitations WHERE invitation_id = ?",
                                  [invitation_id]))
        return _invitation(rows[0]) if rows else None

    def invitations(self) -> list[LocalInvitation]:
        rows = self.db.query("SELECT * FROM invitations ORDER BY created_at, invitation_id")
        return [_invitation(row) for row in rows]

    def refuse(self, invitation_id: str, contact_id: str, problem: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE invitations SET state = ?, contact_id = ?, problem = ?,"
                       " secret = NULL WHERE invitation_id = ?",
                       [REFUSED, contact_id, problem, invitation_id])

    # -- pinned contacts (the outbox's `contacts` table) -----------------------------------
    def pin(self, invitation_id: str, contact: PinnedContact, pinned_at: str) -> None:
        """Pin a verified contact: from now on every chunk is sealed to its recipient too."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO contacts (id, name, policy, check_in_minutes,"
                       " recipient, contact_key, safety_number, pinned_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [contact.contact_id, contact.name, contact.policy,
                        contact.check_in_minutes, contact.recipient, contact.contact_key,
                        contact.safety_number, pinned_at])
            db.execute("UPDATE invitations SET state = ?, contact_id = ?, safety_number = ?,"
                       " secret = NULL WHERE invitation_id = ?",
                       [PINNED, contact.contact_id, contact.safety_number, invitation_id])

    def pin_share(self, invitation_id: str, contact: PinnedContact, encounter_id: str) -> None:
        """Pin a verified share recipient: re-wrapped to for `encounter_id` only, and left out
        of the `contacts` table the recorder seals new chunks to."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO share_recipients (contact_id, invitation_id,"
                       " encounter_id, recipient, contact_key) VALUES (?, ?, ?, ?, ?)",
                       [contact.contact_id, invitation_id, encounter_id, contact.recipient,
                        contact.contact_key])
            db.execute("UPDATE invitations SET state = ?, contact_id = ?, safety_number = ?,"
                       " secret = NULL WHERE invitation_id = ?",
                       [PINNED, contact.contact_id, contact.safety_number, invitation_id])

    def share_recipients(self) -> list[ShareRecipient]:
        """The shares still in force (their invitation pinned, not revoked)."""
        rows = self.db.query("SELECT s.contact_id, s.encounter_id, s.recipient, i.name,"
                             " i.safety_number FROM"
                             " share_recipients s JOIN invitations i ON i.invitation_id ="
                             " s.invitation_id WHERE i.state = ? ORDER BY s.contact_id",
                             [PINNED])
        return [ShareRecipient(r["contact_id"], r["encounter_id"], r["recipient"], r["name"],
                               r["safety_number"]) for r in rows]

    def unpin(self, contact_id: str) -> None:
        """Stop sealing to a revoked contact (its row stays, unpinned, for the record)."""
        with self._tx() as db:
            db.execute("UPDATE contacts SET pinned_at = NULL WHERE id = ?", [contact_id])
            db.execute("UPDATE invitations SET state = ? WHERE contact_id = ? AND state = ?",
                       [REVOKED, contact_id, PINNED])

    def update_pinned(self, contact_id: str, name: str, policy: str,
                      check_in_minutes: int | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE contacts SET name = ?, policy = ?, check_in_minutes = ?"
                       " WHERE id = ?", [name, policy, check_in_minutes, contact_id])

    def pinned(self, contact_id: str) -> PinnedContact | None:
        rows = list(self.db.query("SELECT * FROM contacts WHERE id = ? AND pinned_at IS NOT"
                                  " NULL", [contact_id]))
        if not rows:
            return None
        row = rows[0]
        return PinnedContact(row["id"], row["name"], row["policy"], row["check_in_minutes"],
                             row["recipient"], row["contact_key"], row["safety_number"])
