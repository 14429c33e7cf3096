"""Login by challenge signature, and bearer tokens.

- A challenge is 32 random bytes, issued for one device, stored only as its SHA-256, valid for
  CHALLENGE_TTL_SECONDS and consumed by the first attempt to use it (right or wrong).
- The device signs `login_statement(server name, device id, challenge)`; the server name and the
  action word bind the signature to this server and to logging in.
- A token is `<id>.<secret>`: the id finds the row, the secret's SHA-256 is compared with
  hmac.compare_digest. The database never holds a usable token.
- Trusted contacts log in the same way with their own key (`contact_id` instead of
  `device_id`, action word `contact-login`). Their challenges and tokens are stored under the
  subject `contact:<contact id>`, which no device id (a UUID) can equal.
- Times come from Services.now(), so tests can move the clock past a token's expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import request

from crypto.errors import CryptoError
from crypto.signing import verify_raw
from schemas.common import format_time
from schemas.statements import contact_login_statement, login_statement
from server.context import Services
from server.errors import ApiError
from server.identity.ratelimit import retry_after_header
from server.store.accounts import TokenRecord

TOKEN_ID_BYTES = 12
TOKEN_SECRET_BYTES = 32
CHALLENGE_BYTES = 32
CONTACT_SUBJECT = "contact:"
DEVICE, CONTACT = "device", "contact"


@dataclass(frozen=True)
class Caller:
    """Who is making the request: one of an account's devices, or a trusted contact."""

    kind: str  # DEVICE | CONTACT
    device_id: str  # a device's id; for a contact, the contact's id
    account_id: str  # the account; for a contact, the account of the owner who invited it

    @property
    def contact_id(self) -> str:
        assert self.kind == CONTACT
        return self.device_id


def _subject(device_id: str | None, contact_id: str | None) -> str:
    return device_id if device_id is not None else CONTACT_SUBJECT + str(contact_id)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def iso(unix_time: float) -> str:
    return format_time(datetime.fromtimestamp(unix_time, UTC))


def issue_challenge(svc: Services, device_id: str | None,
                    contact_id: str | None = None) -> tuple[str, str]:
    """A fresh challenge and its expiry; stored only when the device (or contact) exists, but
    answered the same either way (no enumeration)."""
    now = svc.now()
    challenge = base64.b64encode(secrets.token_bytes(CHALLENGE_BYTES)).decode("ascii")
    expires = now + svc.config["CHALLENGE_TTL_SECONDS"]
    with svc.store.write() as tx:
        known = tx.device(device_id) if device_id is not None \
            else tx.contact(str(contact_id))
        if known is not None:
            tx.insert_challenge(sha256_hex(challenge), _subject(device_id, contact_id),
                                expires, now)
    return challenge, iso(expires)


def _login_refused() -> ApiError:
    return ApiError(401, "login_failed", "The challenge is unknown, used or expired, or the "
                    "signature does not verify; ask for a new challenge.",
                    headers={"WWW-Authenticate": "Bearer"})


def _login_key(svc: Services, device_id: str | None, contact_id: str | None,
               challenge: str) -> tuple[str, str, bytes] | None:
    """(verifier key, account id, signed statement) of the subject logging in; None if unknown."""
    with svc.store.read() as tx:
        if device_id is not None:
            device = tx.device(device_id)
            return None if device is None else (
                device.device_key, device.account_id,
                login_statement(svc.server_name, device_id, challenge))
        contact = tx.contact(str(contact_id))
        return None if contact is None else (
            contact.contact_key, contact.account_id,
            contact_login_statement(svc.server_name, str(contact_id), challenge))


def issue_token(svc: Services, device_id: str | None, challenge: str, signature_b64: str,
                contact_id: str | None = None) -> tuple[str, str]:
    now = svc.now()
    subject = _subject(device_id, contact_id)
    with svc.store.write() as tx:  # the challenge is consumed even when the login fails
        fresh = tx.take_challenge(sha256_hex(challenge), subject, now)
    found = _login_key(svc, device_id, contact_id, challenge)
    if not fresh or found is None:
        raise charge_failed_auth(svc, _login_refused())
    key, account_id, statement = found
    try:
        verify_raw(statement, base64.b64decode(signature_b64, validate=True), key)
    except (CryptoError, binascii.Error, ValueError):
        raise charge_failed_auth(svc, _login_refused())
    token_id = secrets.token_urlsafe(TOKEN_ID_BYTES)
    secret = secrets.token_urlsafe(TOKEN_SECRET_BYTES)
    expires = now + svc.config["TOKEN_TTL_SECONDS"]
    record = TokenRecord(token_id, sha256_hex(secret), subject, account_id, expires)
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


def authenticate(svc: Services, allow_contacts: bool = False) -> Caller:
    """The device (or, if allowed, the trusted contact) behind the request's bearer token,
    after its rate limit; else 401/429, or 403 for a contact where only devices may act."""
    try:
        record = _valid_token(svc)
    except ApiError as refusal:
        raise charge_failed_auth(svc, refusal)
    enforce_rate_limit(svc, f"device:{record.device_id}")
    if record.device_id.startswith(CONTACT_SUBJECT):
        caller = Caller(CONTACT, record.device_id[len(CONTACT_SUBJECT):], record.account_id)
    else:
        caller = Caller(DEVICE, record.device_id, record.account_id)
    if caller.kind == CONTACT and not allow_contacts:
        raise ApiError(403, "devices_only", "Only the account's own devices may do this; a "
                       "trusted contact can read what was released to it.")
    return caller


def _valid_token(svc: Services) -> TokenRecord:
    token_id, _, secret = _bearer_token().partition(".")
    with svc.store.read() as tx:
        record = tx.token(token_id) if token_id and secret else None
    if record is None or record.expires_at < svc.now():
        raise _invalid_token()
    if not hmac.compare_digest(sha256_hex(secret), record.secret_hash):
        raise _invalid_token()
    return record


def enforce_rate_limit(svc: Services, key: str) -> None:
    wait = svc.limiter.take(key)
    if wait is not None:
        seconds = retry_after_header(wait)  # the same number in the message and the header
        raise ApiError(429, "rate_limited",
                       f"Too many requests from this client; retry after {seconds} seconds.",
                       headers={"Retry-After": seconds})


def enforce_anonymous_rate_limit(svc: Services) -> None:
    enforce_rate_limit(svc, f"addr:{request.remote_addr}")


def charge_failed_auth(svc: Services, refusal: ApiError) -> ApiError:
    """What to answer for a request refused 401 (no token, a bad one, a failed login): the
    refusal itself, or 429 once its address has failed AUTH_FAILURES_PER_MINUTE times.

    Failures are counted per client address in a bucket of their own, so token guessing and
    floods of unauthenticated requests are slowed down without touching logged-in devices
    behind the same address (their requests are counted in their own buckets)."""
    if refusal.status != 401:
        return refusal
    wait = svc.auth_failures.take(f"addr:{request.remote_addr}")
    if wait is None:
        return refusal
    seconds = retry_after_header(wait)  # the same number in the message and the header
    return ApiError(429, "rate_limited", "Too many requests without a valid token or login "
                    f"from this address; retry after {seconds} seconds.",
                    headers={"Retry-After": seconds})
