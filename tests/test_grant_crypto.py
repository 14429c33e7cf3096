"""crypto/age/rewrap.py and crypto/grant.py: pure re-wrapping and the grant statement."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from crypto import age
from crypto.age.rewrap import rewrap_header
from crypto.errors import BadSignature, HeaderMacError, MalformedError, NoIdentityMatched
from crypto.grant import Grant, check_grant_header, open_grant, sign_grant
from crypto.signing import generate_signing_key, verifier_key
from crypto.slot import Slot

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
ENCOUNTER = str(uuid.uuid4())


def _chunk(seq: int = 0) -> tuple[bytes, str, str]:
    owner, contact = age.generate_identity(), age.generate_identity()
    body = age.encrypt(b"media" * 300, [age.recipient_of(owner), age.recipient_of(contact)],
                       slot=Slot(ENCOUNTER, "audio", seq, False))
    return body, owner, contact


def test_rewrapped_header_opens_the_unchanged_payload_for_her_only() -> None:
    body, owner, contact = _chunk()
    her = age.generate_identity()
    header = rewrap_header(body, [owner], [age.recipient_of(her)])
    payload = body[age.read_header(body).payload_offset:]
    assert age.decrypt(header + payload, [her]) == b"media" * 300
    for outsider in (owner, contact):  # the other readers' stanzas are not carried over
        with pytest.raises(NoIdentityMatched):
            age.decrypt(header + payload, [outsider])
    parsed = age.read_header(header)
    assert parsed.slot == Slot(ENCOUNTER, "audio", 0, False)
    assert parsed.payload_offset == len(header)


def test_rewrap_refuses_a_wrong_identity_and_an_altered_header() -> None:
    body, owner, _contact = _chunk()
    with pytest.raises(NoIdentityMatched):
        rewrap_header(body, [age.generate_identity()], [age.recipient_of(owner)])
    cut = age.read_header(body).payload_offset
    mac_at = cut - 5
    altered = body[:mac_at] + (b"A" if body[mac_at:mac_at + 1] != b"A" else b"B") + \
        body[mac_at + 1:]
    with pytest.raises(HeaderMacError):
        rewrap_header(altered, [owner], [age.recipient_of(owner)])


def _grant(body: bytes, header: bytes, seq: int = 0) -> Grant:
    return Grant(ENCOUNTER, "audio", seq, age.recipient_of(age.generate_identity()),
                 hashlib.sha256(body).hexdigest(), age.read_header(body).payload_offset,
                 hashlib.sha256(header).hexdigest(), "2026-11-29T09:12:45.120Z")


def test_grant_signs_and_checks_its_header() -> None:
    body, owner, _contact = _chunk()
    header = rewrap_header(body, [owner], [age.recipient_of(age.generate_identity())])
    grant = _grant(body, header)
    key = generate_signing_key(f"device-{uuid.uuid4()}")
    opened, signers = open_grant(sign_grant(grant, key), [verifier_key(key)])
    assert opened == grant and signers == [verifier_key(key)]
    check_grant_header(grant, header)
    with pytest.raises(BadSignature):
        open_grant(sign_grant(grant, generate_signing_key("device-x")), [verifier_key(key)])
    other_body, other_owner, _c = _chunk(seq=1)
    other = rewrap_header(other_body, [other_owner], [age.recipient_of(owner)])
    with pytest.raises(MalformedError, match="not the one the grant signed"):
        check_grant_header(grant, other)
    with pytest.raises(MalformedError, match="names another chunk"):
        check_grant_header(_grant(body, other), other)


def test_grant_text_is_canonical_and_the_documented_example_parses() -> None:
    doc = DOC.read_text(encoding="utf-8")
    text = doc.split("<!-- example: grant -->\n```\n", 1)[1].split("```", 1)[0]
    grant = Grant.parse(text)
    assert grant.text() == text and grant.seq == 7 and grant.payload_offset == 231
    for bad in (text.replace("seq 7", "seq 07"), text.replace("stream", "streams", 1),
                text + "extra\n", text.replace("payload 231", "payload 0")):
        with pytest.raises(MalformedError):
            Grant.parse(bad)
