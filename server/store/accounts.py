"""Queries about accounts, devices, login challenges, tokens and add-device codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.store.sql import Connection


@dataclass(frozen=True)
class Device:
    device_id: str
    account_id: str
    device_key: str
    created_at: str


@dataclass(frozen=True)
class Account:
    account_id: str
    recovery_recipient: str
    created_at: str


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    secret_hash: str
    device_id: str
    account_id: str
    expires_at: float


@dataclass(frozen=True)
class DeviceInvitation:
    code_hash: str
    account_id: str
    expires_at: float
    redeemed_by: str | None


def _one(db: Connection, sql: str, params: list[Any]) -> dict[str, Any] | None:
    return db.one(sql, params)


class AccountQueries:
    db: Connection

    def device(self, device_id: str) -> Device | None:
        row = _one(self.db, "SELECT * FROM devices WHERE device_id = ?", [device_id])
        return Device(**row) if row else None

    def account(self, account_id: str) -> Account | None:
        row = _one(self.db, "SELECT * FROM accounts WHERE account_id = ?", [account_id])
        return Account(**row) if row else None

    def devices_of(self, account_id: str) -> list[Device]:
        rows = self.db.query(
            "SELECT * FROM devices WHERE account_id = ? ORDER BY created_at, device_id",
            [account_id],
        )
        return [Device(**row) for row in rows]

    def insert_account(self, account: Account) -> None:
        self.db.insert("accounts", vars(account))

    def insert_device(self, device: Device) -> None:
        self.db.insert("devices", vars(device))

    # -- login challenges: stored hashed, deleted when used or expired

    def insert_challenge(self, challenge_hash: str, device_id: str, expires_at: float,
                         now: float) -> None:
        self.db.execute("DELETE FROM login_challenges WHERE expires_at < ?", [now])
        self.db.insert("login_challenges",
            {"challenge_hash": challenge_hash, "device_id": device_id, "expires_at": expires_at}
        )

    def take_challenge(self, challenge_hash: str, device_id: str, now: float) -> bool:
        """Consume the challenge; True if it was issued to this device and is still fresh."""
        row = _one(self.db, "SELECT * FROM login_challenges WHERE challenge_hash = ?",
                   [challenge_hash])
        if row is None:
            return False
        self.db.execute("DELETE FROM login_challenges WHERE challenge_hash = ?", [challenge_hash])
        return bool(row["device_id"] == device_id and row["expires_at"] >= now)

    # -- bearer tokens: looked up by id, secret compared as a hash by the caller

    def insert_token(self, token: TokenRecord, created_at: str, now: float) -> None:
        self.db.execute("DELETE FROM tokens WHERE expires_at < ?", [now])
        self.db.insert("tokens", {**vars(token), "created_at": created_at})

    def token(self, token_id: str) -> TokenRecord | None:
        row = _one(self.db, "SELECT token_id, secret_hash, device_id, account_id, expires_at "
                            "FROM tokens WHERE token_id = ?", [token_id])
        return TokenRecord(**row) if row else None

    # -- add-device codes

    def insert_device_invitation(self, invitation: DeviceInvitation, created_by: str) -> None:
        self.db.insert("device_invitations", {**vars(invitation), "created_by": created_by})

    def device_invitation(self, code_hash: str) -> DeviceInvitation | None:
        row = _one(self.db, "SELECT code_hash, account_id, expires_at, redeemed_by "
                            "FROM device_invitations WHERE code_hash = ?", [code_hash])
        return DeviceInvitation(**row) if row else None

    def redeem_device_invitation(self, code_hash: str, device_id: str, at: str) -> None:
        self.db.execute(
            "UPDATE device_invitations SET redeemed_by = ?, redeemed_at = ? WHERE code_hash = ?",
            [device_id, at, code_hash],
        )
