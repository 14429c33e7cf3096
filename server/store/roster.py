"""Queries about device rosters (crypto/roster.py) and pending device links.

The server only stores what devices signed; identity/roster.py checks each statement before it
is appended. Rows are never updated or deleted: the roster is append-only.
"""

from __future__ import annotations

from sqlite_utils import Database

from server.store.sql import Connection


def create_roster_tables(db: Database) -> None:
    db.table("roster_statements").create(
        {"account_id": str, "seq": int, "note": str, "hash": str, "created_at": str},
        pk=("account_id", "seq"), not_null=["note", "hash", "created_at"],
        foreign_keys=[("account_id", "accounts", "account_id")],
    )
    # A new device's proof that it holds the link code's secret (docs/protocol.md, roster);
    # an existing device checks it before it signs the device into the roster.
    db.table("roster_link_requests").create(
        {"device_id": str, "account_id": str, "proof": str, "created_at": str},
        pk="device_id", not_null=["account_id", "proof", "created_at"],
        foreign_keys=[("account_id", "accounts", "account_id")],
    )
    # The latest contact set an owner's device signed (one per account, replaced by newer).
    db.table("roster_contact_sets").create(
        {"account_id": str, "seq": int, "note": str, "created_at": str},
        pk="account_id", not_null=["seq", "note", "created_at"],
        foreign_keys=[("account_id", "accounts", "account_id")],
    )


class RosterQueries:
    db: Connection

    def roster_notes(self, account_id: str) -> list[str]:
        rows = self.db.query(
            "SELECT note FROM roster_statements WHERE account_id = ? ORDER BY seq", [account_id])
        return [str(row["note"]) for row in rows]

    def insert_roster_statement(self, account_id: str, seq: int, note: str, hash_hex: str,
                                at: str) -> None:
        self.db.insert("roster_statements",
            {"account_id": account_id, "seq": seq, "note": note, "hash": hash_hex,
             "created_at": at})

    def link_request(self, device_id: str) -> dict[str, str] | None:
        return self.db.one("SELECT * FROM roster_link_requests WHERE device_id = ?",
                       [device_id])

    def insert_link_request(self, device_id: str, account_id: str, proof: str, at: str) -> None:
        self.db.insert("roster_link_requests",
            {"device_id": device_id, "account_id": account_id, "proof": proof, "created_at": at})

    def link_requests(self, account_id: str) -> list[dict[str, str]]:
        rows = self.db.query(
            "SELECT r.device_id, d.device_key, r.proof, r.created_at "
            "FROM roster_link_requests r JOIN devices d ON d.device_id = r.device_id "
            "WHERE r.account_id = ? ORDER BY r.created_at, r.device_id", [account_id])
        return rows

    def contact_set(self, account_id: str) -> dict[str, object] | None:
        return self.db.one("SELECT seq, note FROM roster_contact_sets WHERE account_id = ?",
                       [account_id])

    def put_contact_set(self, account_id: str, seq: int, note: str, at: str) -> None:
        self.db.execute(
            "INSERT INTO roster_contact_sets (account_id, seq, note, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET seq = excluded.seq, "
            "note = excluded.note, created_at = excluded.created_at",
            [account_id, seq, note, at])
