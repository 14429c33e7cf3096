"""crypto/invitation.py and crypto/access.py: exact bytes, the documented example, strictness."""

from __future__ import annotations

import base64
import hmac
from dataclasses import replace
from pathlib import Path

import pytest

from crypto import age
from crypto.access import AccessRecord, open_access, sign_access, what_chunk
from crypto.errors import BadSignature, CryptoError, MalformedError
from crypto.invitation import (
    ContactKeys,
    InvitationCode,
    ProofMismatch,
    contact_proof,
    invitation_safety_number,
    owner_proof,
    owner_terms,
    verify_contact_proof,
    verify_owner_proof,
)
from crypto.signing import generate_signing_key, signing_key_from_seed, verifier_key

DOCS = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
DEVICE_KEY = ("device-7d4f1c2a-93b0-4e8e-a6c5-1f2e3d4c5b6a+cb293dab+"
              "AejjIrys6W/YJ4UZttfOOYAoxS6NR9jtkfnX6yM7aSpf")
CODE = InvitationCode.parse("AAECAwQFBgcICQoLDA0ODw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
OWNER_IDENTITY = age.generate_identity(lambda n: bytes([7]) * n)
CONTACT_IDENTITY = age.generate_identity(lambda n: bytes([9]) * n)
TERMS = owner_terms(CODE.invitation_id, "safehold.example.org",
                    "3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b", age.recipient_of(OWNER_IDENTITY),
                    [DEVICE_KEY], "check_in", 30, "2026-12-05T03:30:00.000Z")
KEYS = ContactKeys(CODE.invitation_id, age.recipient_of(CONTACT_IDENTITY),
                   verifier_key(signing_key_from_seed("contact", bytes([11]) * 32)))
OWNER_PROOF = "SNCA5jRNQkWYa9a/bahkl+qyBXEvNQ57XYl0AsbAh1Y="
CONTACT_PROOF = "GXy5G7PtU9nXq7I222MG85lQt2CBP2LM/W6br6bkdPg="
SAFETY = "14125 30465 14038 04459 00903 38449 54853 79623 92857 16727 08579 44900"


def independent_proof(secret: bytes, purpose: bytes, text: str) -> str:
    """RFC 5869 HKDF-SHA256 (empty salt) and HMAC-SHA256, from the standard library."""
    prk = hmac.digest(b"\x00" * 32, secret, "sha256")
    key = hmac.digest(prk, purpose + b"\x01", "sha256")
    return base64.b64encode(hmac.digest(key, text.encode(), "sha256")).decode()


def test_the_documented_example_is_reproduced() -> None:
    assert CODE.secret == bytes(range(32)) and CODE.text().startswith(CODE.invitation_id + ".")
    assert owner_proof(CODE.secret, TERMS) == OWNER_PROOF == independent_proof(
        CODE.secret, b"safehold invite owner v1", TERMS.text())
    assert contact_proof(CODE.secret, KEYS) == CONTACT_PROOF == independent_proof(
        CODE.secret, b"safehold invite contact v1", KEYS.text())
    assert invitation_safety_number(TERMS, KEYS) == SAFETY
    docs = DOCS.read_text(encoding="utf-8")
    for shown in (TERMS.text(), KEYS.text(), OWNER_PROOF, CONTACT_PROOF, SAFETY, CODE.text()):
        assert shown in docs, f"docs/protocol.md should show {shown!r}"


def test_any_change_to_the_terms_or_keys_breaks_the_proof() -> None:
    other_key = verifier_key(generate_signing_key("device-x"))
    changed_terms = [replace(TERMS, policy="immediate", check_in_minutes=None),
                     replace(TERMS, check_in_minutes=31),
                     replace(TERMS, recovery_recipient=KEYS.age_recipient),
                     replace(TERMS, device_keys=tuple(sorted([DEVICE_KEY, other_key]))),
                     replace(TERMS, server="evil.example"),
                     replace(TERMS, expires_at="2027-12-05T03:30:00.000Z")]
    for terms in changed_terms:
        with pytest.raises(ProofMismatch):
            verify_owner_proof(CODE.secret, terms, OWNER_PROOF)
    for keys in (replace(KEYS, age_recipient=TERMS.recovery_recipient),
                 replace(KEYS, contact_key=other_key)):
        with pytest.raises(ProofMismatch):
            verify_contact_proof(CODE.secret, keys, CONTACT_PROOF)
    with pytest.raises(ProofMismatch):  # the same keys under another invitation's secret
        verify_contact_proof(bytes(32), KEYS, CONTACT_PROOF)
    with pytest.raises(ProofMismatch):  # purposes differ: one proof cannot stand for the other
        verify_contact_proof(CODE.secret, KEYS, OWNER_PROOF)
    for junk in (None, 7, "", CONTACT_PROOF.lower()):
        with pytest.raises(ProofMismatch):
            verify_contact_proof(CODE.secret, KEYS, junk)


@pytest.mark.parametrize("text", [
    "", "AAECAwQFBgcICQoLDA0ODw", "AAECAwQFBgcICQoLDA0ODw.", ".AAEC",
    "AAECAwQFBgcICQoLDA0ODx.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",  # not canonical
    "AAECAwQFBgcICQoLDA0O.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",  # short id
    "AAECAwQFBgcICQoLDA0ODw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",  # padded
    "AAECAwQFBgcICQoLDA0ODw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd+h8",  # not url-safe
])
def test_malformed_codes_are_refused(text: str) -> None:
    with pytest.raises(MalformedError):
        InvitationCode.parse(text)


def test_codes_survive_copy_and_paste_whitespace() -> None:
    assert InvitationCode.parse(f"  {CODE.text()}\n") == CODE


def test_terms_refuse_malformed_fields() -> None:
    with pytest.raises(CryptoError):
        replace(TERMS, device_keys=())
    with pytest.raises(CryptoError):
        replace(TERMS, device_keys=(DEVICE_KEY, DEVICE_KEY))
    with pytest.raises(CryptoError):
        replace(TERMS, policy="sometimes")
    with pytest.raises(CryptoError):
        replace(TERMS, policy="on_alert")  # check_in_minutes left set
    with pytest.raises(CryptoError):
        replace(TERMS, recovery_recipient="age1nope")


SERVER_KEY = signing_key_from_seed("safehold.example.org", bytes(range(32)))
RECORD = AccessRecord("3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b",
                      "0b6e1c1e-6f8a-4c1e-9d2b-2f1f3c4d5e6f", what_chunk("audio", 7),
                      "2026-11-28T03:31:00.000Z")


def test_access_record_text_and_signed_leaf() -> None:
    assert RECORD.text() == ("safehold.access/v1\n"
                             "encounter 3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b\n"
                             "contact 0b6e1c1e-6f8a-4c1e-9d2b-2f1f3c4d5e6f\n"
                             "what chunk audio/7\n"
                             "time 2026-11-28T03:31:00.000Z\n")
    leaf = sign_access(RECORD, SERVER_KEY)
    assert open_access(leaf, verifier_key(SERVER_KEY)) == RECORD
    with pytest.raises(BadSignature):
        open_access(leaf, verifier_key(generate_signing_key("safehold.example.org")))
    for what in ("list", "log", "descriptor log/0", "chunk video/4294967295",
                 "chunk audio/0-255", "descriptor video/7-4294967295"):  # batch reads: a range
        assert AccessRecord.parse(replace(RECORD, what=what).text()).what == what


@pytest.mark.parametrize("bad", [
    lambda t: t.replace("what chunk audio/7", "what chunk audio/07"),
    lambda t: t.replace("what chunk audio/7", "what everything"),
    lambda t: t.replace("what chunk audio/7", "what chunk Audio/7"),
    lambda t: t.replace("what chunk audio/7", "what chunk audio/7/8"),
    lambda t: t.replace("what chunk audio/7", "what chunk audio/7-7"),  # a range goes up
    lambda t: t.replace("what chunk audio/7", "what chunk audio/9-7"),
    lambda t: t.replace("what chunk audio/7", "what chunk audio/7-08"),
    lambda t: t.replace("what chunk audio/7", "what chunk audio/7-8-9"),
    lambda t: t.replace("what chunk audio/7", "what chunk audio/7-4294967296"),
    lambda t: t.replace("contact 0b6e", "contact 0B6E"),
    lambda t: t.replace("time 2026-11-28T03:31:00.000Z", "time 2026-11-28T03:31:00Z"),
    lambda t: t.replace("safehold.access/v1", "safehold.access/v2"),
    lambda t: t.replace("encounter ", "encounter  "),
    lambda t: t.rstrip("\n"),
    lambda t: t + "extra line\n",
])
def test_access_records_parse_strictly(bad: object) -> None:
    with pytest.raises(MalformedError):
        AccessRecord.parse(bad(RECORD.text()))  # type: ignore[operator]


def test_access_records_check_their_fields() -> None:
    for change in ({"encounter": "not-a-uuid"}, {"what": "chunk audio"},
                   {"time": "yesterday"}, {"contact": "device-1"}):
        with pytest.raises(MalformedError):
            replace(RECORD, **change)
