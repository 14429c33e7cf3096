"""Accounts and devices: the first device creates the account; more join with a code.

Registration and joining are idempotent for the same keys (a phone that lost the response can
send the same request again) and refuse ids already taken by other keys.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time

from crypto.age import validate_recipient
from crypto.errors import CryptoError
from crypto.signing import public_key_bytes, verify_raw
from schemas.statements import add_device_statement, register_statement
from server.context import Services
from server.errors import ApiError
from server.identity.auth import Caller, iso, sha256_hex
from server.store.accounts import Account, Device, DeviceInvitation
from server.store.sql import IntegrityError

INVITATION_CODE_BYTES = 16


def check_device_key(device_key: str) -> None:
    try:
        public_key_bytes(device_key)
    except CryptoError as exc:
        raise ApiError(400, "bad_key", f"device_key is not an Ed25519 verifier key: {exc}")


def check_recipient(recipient: str) -> None:
    try:
        validate_recipient(recipient)
    except CryptoError as exc:
        raise ApiError(400, "bad_recipient", f"recovery_recipient is not an age recipient: {exc}")


def check_signature(statement: bytes, signature_b64: str, device_key: str) -> None:
    try:
        verify_raw(statement, base64.b64decode(signature_b64, validate=True), device_key)
    except (CryptoError, binascii.Error, ValueError):
        raise ApiError(400, "bad_signature",
                       "The signature does not verify with device_key over the statement "
                       "in docs/protocol.md (check the server name).")


def register(svc: Services, account_id: str, device_id: str, device_key: str,
             recovery_recipient: str, signature: str) -> bool:
    """Create the account and its first device; False if exactly this was done before."""
    check_device_key(device_key)
    check_recipient(recovery_recipient)
    statement = register_statement(svc.server_name, account_id, device_id, recovery_recipient)
    check_signature(statement, signature, device_key)
    now = iso(time.time())
    with svc.store.write() as tx:
        account, device = tx.account(account_id), tx.device(device_id)
        if account and device and device.account_id == account_id \
                and device.device_key == device_key \
                and account.recovery_recipient == recovery_recipient:
            return False
        if account is not None:
            raise ApiError(409, "account_exists", "This account id is already registered.")
        if device is not None:
            raise ApiError(409, "device_exists", "This device id is already registered.")
        tx.insert_account(Account(account_id, recovery_recipient, now))
        tx.insert_device(Device(device_id, account_id, device_key, now))
    return True


def create_device_invitation(svc: Services, caller: Caller) -> tuple[str, str]:
    code = secrets.token_urlsafe(INVITATION_CODE_BYTES)
    now = time.time()
    expires = now + svc.config["INVITATION_TTL_SECONDS"]
    with svc.store.write() as tx:
        tx.insert_device_invitation(
            DeviceInvitation(sha256_hex(code), caller.account_id, expires, None), caller.device_id
        )
    return code, iso(expires)


def _bad_code() -> ApiError:
    return ApiError(400, "invalid_code",
                    "The add-device code is unknown, used or expired; make a new one.")


def add_device(svc: Services, code: str, device_id: str, device_key: str,
               signature: str) -> tuple[Account, bool]:
    """Join the code's account; (account, created). A repeat by the same device is a no-op."""
    check_device_key(device_key)
    check_signature(add_device_statement(svc.server_name, device_id, code), signature, device_key)
    now = time.time()
    with svc.store.write() as tx:
        invitation = tx.device_invitation(sha256_hex(code))
        if invitation is None:
            raise _bad_code()
        account = tx.account(invitation.account_id)
        existing = tx.device(device_id)
        assert account is not None  # invitations reference their account
        if invitation.redeemed_by == device_id and existing and existing.device_key == device_key:
            return account, False
        if invitation.redeemed_by is not None or invitation.expires_at < now:
            raise _bad_code()
        if existing is not None:
            raise ApiError(409, "device_exists", "This device id is already registered.")
        try:
            tx.insert_device(Device(device_id, account.account_id, device_key, iso(now)))
        except IntegrityError:
            raise ApiError(409, "device_exists", "This device id is already registered.")
        tx.redeem_device_invitation(sha256_hex(code), device_id, iso(now))
    return account, True
