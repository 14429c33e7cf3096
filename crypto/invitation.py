"""Contact invitations: a code whose secret half never reaches the server, and two proofs.

The owner's device makes `code = <invitation id>.<secret>` (both unpadded base64url; 16 and 32
random bytes) and gives it to the contact out of band. The server only ever sees the id.

- owner proof = HMAC-SHA256(K_owner, OwnerTerms.text()): the contact recomputes it, so the
  server cannot show the contact other owner keys or other terms than the device sent.
- contact proof = HMAC-SHA256(K_contact, ContactKeys.text()): the owner's device recomputes it,
  so a contact key substituted by the server is detected before anything is sealed to it.

K_purpose = HKDF-SHA256(ikm = secret, salt = empty, info = purpose), purposes
"safehold invite owner v1" and "safehold invite contact v1". Both sides then show the safety
number of (OwnerTerms.safety_bytes(), ContactKeys.safety_bytes()) for comparison out of band.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from crypto.age import validate_recipient
from crypto.age.keys import hkdf_sha256
from crypto.descriptor import check_time
from crypto.errors import AuthenticationError, MalformedError
from crypto.safety import safety_number
from crypto.signing import public_key_bytes
from crypto.slot import parse_decimal

Rng = Callable[[int], bytes]
ID_BYTES = 16
SECRET_BYTES = 32
OWNER_PURPOSE = b"safehold invite owner v1"
CONTACT_PURPOSE = b"safehold invite contact v1"
OWNER_TAG = "safehold.invite-owner/v1"
CONTACT_TAG = "safehold.invite-contact/v1"
POLICIES = ("immediate", "on_alert", "check_in")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ProofMismatch(AuthenticationError):
    """An invitation proof does not match: keys or terms were changed on the way."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64url(text: str, size: int, what: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise MalformedError(f"{what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedError(f"{what} is not base64url")
    if len(data) != size or _b64url(data) != text:
        raise MalformedError(f"{what} must be {size} bytes in canonical base64url")
    return data


def check_invitation_id(value: object) -> str:
    if not isinstance(value, str):
        raise MalformedError("an invitation id is text")
    _unb64url(value, ID_BYTES, "invitation id")
    return value


@dataclass(frozen=True)
class InvitationCode:
    invitation_id: str
    secret: bytes

    def text(self) -> str:
        return f"{self.invitation_id}.{_b64url(self.secret)}"

    @classmethod
    def parse(cls, text: str) -> InvitationCode:
        """Strict: the two parts, exactly; surrounding whitespace is forgiven (copy/paste)."""
        first, dot, second = text.strip().partition(".") if isinstance(text, str) else ("", "", "")
        if not dot:
            raise MalformedError("an invitation code is <id>.<secret>")
        return cls(check_invitation_id(first), _unb64url(second, SECRET_BYTES, "secret"))


def new_invitation_code(rng: Rng = os.urandom) -> InvitationCode:
    return InvitationCode(_b64url(rng(ID_BYTES)), rng(SECRET_BYTES))


def check_policy(policy: object, check_in_minutes: object) -> None:
    if policy not in POLICIES:
        raise MalformedError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if policy == "check_in":
        if not isinstance(check_in_minutes, int) or isinstance(check_in_minutes, bool) \
                or not 1 <= check_in_minutes <= 10080:
            raise MalformedError("check_in needs check_in_minutes between 1 and 10080")
    elif check_in_minutes is not None:
        raise MalformedError("check_in_minutes is only for the check_in policy")


@dataclass(frozen=True)
class OwnerTerms:
    """What the owner's device commits to: who the owner is (keys) and the terms offered."""

    invitation_id: str
    server: str
    account_id: str
    recovery_recipient: str
    device_keys: tuple[str, ...]  # sorted, at least one
    policy: str
    check_in_minutes: int | None
    expires_at: str
    # A one-encounter invitation (`safehold device share`): the recipient may read this
    # encounter only. None for a trusted contact; then the text has no `encounter` line.
    encounter: str | None = None

    def __post_init__(self) -> None:
        check_invitation_id(self.invitation_id)
        if self.encounter is not None and not _UUID.fullmatch(self.encounter):
            raise MalformedError("encounter must be a lowercase UUID")
        if not self.server or any(c in self.server for c in " \n"):
            raise MalformedError("server must be a host[:port]")
        if not _UUID.fullmatch(self.account_id):
            raise MalformedError("account id must be a lowercase UUID")
        validate_recipient(self.recovery_recipient)
        if not self.device_keys or list(self.device_keys) != sorted(set(self.device_keys)):
            raise MalformedError("device keys must be a sorted list without repeats")
        for key in self.device_keys:
            public_key_bytes(key)
        check_policy(self.policy, self.check_in_minutes)
        check_time(self.expires_at)

    def text(self) -> str:
        minutes = "-" if self.check_in_minutes is None else str(self.check_in_minutes)
        lines = [OWNER_TAG, f"invitation {self.invitation_id}", f"server {self.server}",
                 f"account {self.account_id}", f"recipient {self.recovery_recipient}",
                 *(f"device {key}" for key in self.device_keys), f"policy {self.policy}",
                 f"check_in {minutes}", f"expires {self.expires_at}"]
        if self.encounter is not None:
            lines.append(f"encounter {self.encounter}")
        return "".join(line + "\n" for line in lines)

    def safety_bytes(self) -> bytes:
        """The owner's side of the safety number: the keys, not the terms."""
        lines = ["safehold.safety-owner/v1", self.recovery_recipient, *self.device_keys]
        return "".join(line + "\n" for line in lines).encode("utf-8")


def owner_terms(invitation_id: str, server: str, account_id: str, recovery_recipient: str,
                device_keys: Sequence[str], policy: str, check_in_minutes: int | None,
                expires_at: str, encounter: str | None = None) -> OwnerTerms:
    return OwnerTerms(invitation_id, server, account_id, recovery_recipient,
                      tuple(sorted(set(device_keys))), policy,
                      None if check_in_minutes is None else parse_minutes(check_in_minutes),
                      expires_at, encounter)


def parse_minutes(value: int | str) -> int:
    return value if isinstance(value, int) else parse_decimal(value, "check_in_minutes")


@dataclass(frozen=True)
class ContactKeys:
    """What the contact registers: the age recipient chunks are sealed to, and its login key."""

    invitation_id: str
    age_recipient: str
    contact_key: str

    def __post_init__(self) -> None:
        check_invitation_id(self.invitation_id)
        validate_recipient(self.age_recipient)
        public_key_bytes(self.contact_key)

    def text(self) -> str:
        lines = [CONTACT_TAG, f"invitation {self.invitation_id}",
                 f"recipient {self.age_recipient}", f"key {self.contact_key}"]
        return "".join(line + "\n" for line in lines)

    def safety_bytes(self) -> bytes:
        lines = ["safehold.safety-contact/v1", self.age_recipient, self.contact_key]
        return "".join(line + "\n" for line in lines).encode("utf-8")


def _mac(secret: bytes, purpose: bytes, text: str) -> str:
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        raise MalformedError(f"an invitation secret is {SECRET_BYTES} bytes")
    key = hkdf_sha256(secret, b"", purpose)
    return base64.b64encode(hmac.digest(key, text.encode("utf-8"), "sha256")).decode("ascii")


def _check(expected: str, given: object, what: str) -> None:
    if not isinstance(given, str) or not hmac.compare_digest(expected.encode(),
                                                              given.encode("utf-8", "replace")):
        raise ProofMismatch(f"the {what} proof does not match the invitation secret")


def owner_proof(secret: bytes, terms: OwnerTerms) -> str:
    return _mac(secret, OWNER_PURPOSE, terms.text())


def verify_owner_proof(secret: bytes, terms: OwnerTerms, proof: object) -> None:
    _check(owner_proof(secret, terms), proof, "owner")


def contact_proof(secret: bytes, keys: ContactKeys) -> str:
    return _mac(secret, CONTACT_PURPOSE, keys.text())


def verify_contact_proof(secret: bytes, keys: ContactKeys, proof: object) -> None:
    _check(contact_proof(secret, keys), proof, "contact")


def invitation_safety_number(terms: OwnerTerms, keys: ContactKeys) -> str:
    return safety_number(terms.safety_bytes(), keys.safety_bytes())
