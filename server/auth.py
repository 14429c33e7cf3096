"""Login by challenge signature, and bearer tokens.

- A challenge is 32 random bytes, issued for one device, stored only as its SHA-256, valid for
  CHALLENGE_TTL_SECONDS and consumed by the first attempt to use it (right or wrong).
- The device signs `login_statement(server name, device id, challenge)`; the server name and the
  action word bind the signature to this server and to logging in.
- A token is `<id>.<secret>`: the id finds the row, the secret's SHA-256 is compared with
  hmac.compare_digest. The database never holds a usable token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import request

from crypto.errors import CryptoError
from crypto.signing import verify_raw
from schemas.common import format_time
from schemas.statements import login_statement
from server.context import Services
from server.errors import ApiError
from server.metadata_accounts import TokenRecord
from server.ratelimit import retry_after_header

TOKEN_ID_BYTES = 12
TOKEN_SECRET_BYTES = 32
CHALLENGE_BYTES = 32


@dataclass(frozen=True)
class Caller:
    """Who is making the request. Contacts (issue 4) will add their own kind."""

    kind: str
    device_id: str
    account_id: str


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def iso(unix_time: float) -> str:
    return format_time(datetime.fromtimestamp(unix_time, UTC))


def issue_challenge(svc: Services, device_id: str) -> tuple[str, str]:
    """A fresh challenge and its expiry; stored only when the device exists (no enumeration)."""
    now = time.time()
    challenge = base64.b64encode(secrets.token_bytes(CHALLENGE_BYTES)).decode("ascii")
    expires = now + svc.config["CHALLENGE_TTL_SECONDS"]
    with svc.store.write() as tx:
        if tx.device(device_id) is not None:
            tx.insert_challenge(sha256_hex(challenge), device_id, expires, now)
    return challenge, iso(expires)


def _login_refused() -> ApiError:
    return ApiError(401, "login_failed", "The challenge is unknown, used or expired, or the "
                    "signature does not verify; ask for a new challenge.",
                    headers={"WWW-Authenticate": "Bearer"})


def issue_token(svc: Services, device_id: str, challenge: str,
                signature_b64: str) -> tuple[str, str]:
    now = time.time()
    with svc.store.write() as tx:  # the challenge is consumed even when the login fails
        fresh = tx.take_challenge(sha256_hex(challenge), device_id, now)
    with svc.store.read() as tx:
        device = tx.device(device_id)
    if not fresh or device is None:
        raise _login_refused()
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        verify_raw(login_statement(svc.server_name, device_id, challenge), signature,
                   device.device_key)
    except (CryptoError, binascii.Error, ValueError):
        raise _login_refused()
    token_id = secrets.token_urlsafe(TOKEN_ID_BYTES)
    secret = secrets.token_urlsafe(TOKEN_SECRET_BYTES)
    expires = now + svc.config["TOKEN_TTL_SECONDS"]
    record = TokenRecord(token_id, sha256_hex(secret), device_id, device.account_id, expires)
    with svc.store.write() as tx:
        tx.insert_token(record, iso(now), now)
    return f"{token_id}.{secret}", iso(expires)


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "auth_required", "This needs an Authorization: Bearer token; "
                       "log in with POST /v1/auth/challenge and /v1/auth/token.",
                       headers={"WWW-Authenticate": "Bearer"})
    if scheme.lower() != "bearer" or not token.strip():
        raise _invalid_token()
    return token.strip()


def _invalid_token() -> ApiError:
    return ApiError(401, "invalid_token", "The bearer token is unknown, malformed or expired; "
                    "log in again.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def authenticate(svc: Services) -> Caller:
    """The device behind the request's bearer token, after its rate limit; else 401/429."""
    token_id, _, secret = _bearer_token().partition(".")
    with svc.store.read() as tx:
        record = tx.token(token_id) if token_id and secret else None
    if record is None or record.expires_at < time.time():
        raise _invalid_token()
    if not hmac.compare_digest(sha256_hex(secret), record.secret_hash):
        raise _invalid_token()
    enforce_rate_limit(svc, f"device:{record.device_id}")
    return Caller("device", record.device_id, record.account_id)


def enforce_rate_limit(svc: Services, key: str) -> None:
    wait = svc.limiter.take(key)
    if wait is not None:
        raise ApiError(429, "rate_limited",
                       "Too many requests from this device; retry after Retry-After seconds.",
                       headers={"Retry-After": retry_after_header(wait)})


def enforce_anonymous_rate_limit(svc: Services) -> None:
    enforce_rate_limit(svc, f"addr:{request.remote_addr}")
