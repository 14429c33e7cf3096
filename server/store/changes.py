"""The changes feed: rows written in the same transaction as what they report."""

from __future__ import annotations

from dataclasses import dataclass

from server.store.sql import Connection


@dataclass(frozen=True)
class Change:
    id: int
    kind: str
    encounter_id: str | None
    stream: str | None
    seq: int | None
    at: str


class ChangeQueries:
    db: Connection

    def insert_change(self, account_id: str, kind: str, at: str, encounter_id: str | None = None,
                      stream: str | None = None, seq: int | None = None) -> None:
        self.db.serialize(f"changes:{account_id}")
        self.db.execute(
            "INSERT INTO changes (account_id, kind, encounter_id, stream, seq, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [account_id, kind, encounter_id, stream, seq, at],
        )

    def changes_after(self, account_id: str, after_id: int, limit: int) -> list[Change]:
        rows = self.db.query(
            "SELECT id, kind, encounter_id, stream, seq, at FROM changes "
            "WHERE account_id = ? AND id > ? AND contact_id IS NULL ORDER BY id LIMIT ?",
            [account_id, after_id, limit],
        )
        return [Change(**row) for row in rows]

    def last_change_id(self, account_id: str) -> int:
        return int(self.db.scalar("SELECT COALESCE(MAX(id), 0) FROM changes "
                                  "WHERE account_id = ?", [account_id]))
