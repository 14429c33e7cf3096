"""Queries about one-encounter shares (`safehold device share`): which invitation is scoped to
which encounter, and the re-wrapped age headers (with the device's signed grants) stored for
the recipient. Media bytes are never copied: a grant row is a few hundred bytes of header."""

from __future__ import annotations

from dataclasses import dataclass

from server.store.sql import Connection

# Portable SQL (SQLite and PostgreSQL): TEXT/INTEGER columns, headers as base64 TEXT.
SHARE_DDL = """
CREATE TABLE encounter_shares (
    invitation_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    encounter_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX encounter_shares_encounter ON encounter_shares (encounter_id);
CREATE TABLE share_grants (
    contact_id TEXT NOT NULL,
    encounter_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    header TEXT NOT NULL,
    grant_note TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (contact_id, encounter_id, stream, seq)
);
"""


@dataclass(frozen=True)
class StoredGrant:
    contact_id: str
    encounter_id: str
    stream: str
    seq: int
    header: str  # base64 of the re-wrapped header
    grant_note: str
    created_at: str


class ShareQueries:
    db: Connection

    def insert_share(self, invitation_id: str, account_id: str, encounter_id: str,
                     created_at: str) -> None:
        self.db.execute(
            "INSERT INTO encounter_shares (invitation_id, account_id, encounter_id, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [invitation_id, account_id, encounter_id, created_at])

    def shared_encounter_of_invitation(self, invitation_id: str) -> str | None:
        found = self.db.scalar("SELECT encounter_id FROM encounter_shares WHERE invitation_id = ?",
                               [invitation_id])
        return str(found) if found is not None else None

    def shared_encounter_of_contact(self, contact_id: str) -> str | None:
        """The one encounter a share recipient may read; None for a trusted contact."""
        found = self.db.scalar(
            "SELECT s.encounter_id FROM encounter_shares s JOIN contacts c "
            "ON c.invitation_id = s.invitation_id WHERE c.contact_id = ?",
            [contact_id])
        return str(found) if found is not None else None

    def insert_grant(self, grant: StoredGrant) -> None:
        self.db.execute(
            "INSERT INTO share_grants (contact_id, encounter_id, stream, seq, header, grant_note,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [grant.contact_id, grant.encounter_id, grant.stream, grant.seq, grant.header,
             grant.grant_note, grant.created_at])

    def grants_of(self, encounter_id: str, contact_id: str | None = None) -> list[StoredGrant]:
        sql = ("SELECT contact_id, encounter_id, stream, seq, header, grant_note, created_at "
               "FROM share_grants WHERE encounter_id = ?")
        args: list[object] = [encounter_id]
        if contact_id is not None:
            sql += " AND contact_id = ?"
            args.append(contact_id)
        rows = self.db.query(sql + " ORDER BY contact_id, stream, seq", args)
        return [StoredGrant(str(r["contact_id"]), str(r["encounter_id"]), str(r["stream"]),
                            int(r["seq"]), str(r["header"]), str(r["grant_note"]),
                            str(r["created_at"])) for r in rows]
