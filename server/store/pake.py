"""Short-code (PAKE) mailboxes: one row per allocated nameplate, relayed messages only.

The server never sees the code's words, so it stores nothing it could test a guess against
offline: the two SPAKE2 messages, the two confirmation MACs and the sealed payload, all as
base64 TEXT. A nameplate is taken while its row has not expired (done or burned rows too, so a
late contact is told what happened rather than routed to someone else's invitation).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from server.store.sql import Connection, Row

OPEN, CLAIMED, DONE, BURNED = "open", "claimed", "done", "burned"

# Portable SQL (SQLite and PostgreSQL run it as is): TEXT columns, ISO-8601 times as TEXT.
PAKE_DDL = """
CREATE TABLE pake_mailboxes (
    pake_id TEXT PRIMARY KEY,
    nameplate TEXT NOT NULL,
    account_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    owner_message TEXT NOT NULL,
    contact_message TEXT,
    contact_confirm TEXT,
    owner_confirm TEXT,
    sealed TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    claimed_at TEXT,
    closed_at TEXT
);
CREATE INDEX pake_mailboxes_nameplate ON pake_mailboxes (nameplate, expires_at);
CREATE INDEX pake_mailboxes_account ON pake_mailboxes (account_id);
"""


@dataclass(frozen=True)
class PakeMailbox:
    pake_id: str
    nameplate: str
    account_id: str
    device_id: str
    owner_message: str
    contact_message: str | None
    contact_confirm: str | None
    owner_confirm: str | None
    sealed: str | None
    status: str
    created_at: str
    expires_at: str
    claimed_at: str | None
    closed_at: str | None


_COLUMNS = ", ".join(f.name for f in fields(PakeMailbox))


def _row(row: Row | None) -> PakeMailbox | None:
    return None if row is None else PakeMailbox(**row)


class PakeQueries:
    db: Connection

    def pake_mailbox(self, pake_id: str) -> PakeMailbox | None:
        return _row(self.db.one(f"SELECT {_COLUMNS} FROM pake_mailboxes "  # noqa: S608
                                "WHERE pake_id = ?", [pake_id]))

    def live_pake_mailbox(self, nameplate: str, now: str) -> PakeMailbox | None:
        """The mailbox holding `nameplate` now, else the latest that held it (to say expired)."""
        return _row(self.db.one(
            f"SELECT {_COLUMNS} FROM pake_mailboxes WHERE nameplate = ? "  # noqa: S608
            "ORDER BY (CASE WHEN expires_at > ? THEN 0 ELSE 1 END), created_at DESC LIMIT 1",
            [nameplate, now]))

    def taken_nameplates(self, now: str) -> set[str]:
        rows = self.db.query("SELECT nameplate FROM pake_mailboxes WHERE expires_at > ?", [now])
        return {str(row["nameplate"]) for row in rows}

    def insert_pake_mailbox(self, box: PakeMailbox) -> None:
        values = [getattr(box, f.name) for f in fields(PakeMailbox)]
        self.db.execute(f"INSERT INTO pake_mailboxes ({_COLUMNS}) VALUES "  # noqa: S608
                        f"({', '.join('?' for _ in values)})", values)

    def update_pake_mailbox(self, pake_id: str, **changes: str | None) -> None:
        allowed = {f.name for f in fields(PakeMailbox)} - {"pake_id"}
        assert set(changes) <= allowed
        assignments = ", ".join(f"{name} = ?" for name in changes)
        self.db.execute(f"UPDATE pake_mailboxes SET {assignments} "  # noqa: S608
                        "WHERE pake_id = ?", [*changes.values(), pake_id])
