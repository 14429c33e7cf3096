"""crypto/pake.py and crypto/pgp_words.py: the documented example, the code's shape, and every
way a changed message, a wrong code or a reflection fails key confirmation. Pure and fast."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from crypto.errors import MalformedError
from crypto.pake import (
    ConfirmationFailed,
    OwnerPake,
    ShortCode,
    contact_pake,
    looks_short,
    new_short_code,
)
from crypto.pgp_words import EVEN, ODD

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
CODE = ShortCode.parse("417-guitarist-revenge")
MSG_A = "Qc41LBzXfgMT1Rbpe8iQOPSvpi+aTRQJVL7vg2ip+cIA"
MSG_B = "QgXrvK4Y1XQIAsX1UIZrp++mHJWUaMyfl9HR9hyknA4t"
CONFIRM_B = "CWFBgrZAVwvKKoSplRApajBkkvdxPcSVy5CjleLQSfo="
CONFIRM_A = "d0GU79xpb0i3A7Zz7JoWUR6avim0mLo1CEP7l+yB9To="
SEALED = "AAAAAAAAAAAAAAAA4lJWO1PtSSlGfxCGIoRGfTe2BUVqr9k="


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pair(owner_code: ShortCode = CODE, contact_code: ShortCode = CODE):
    owner = OwnerPake(owner_code)
    msg_b, contact = contact_pake(contact_code, owner.message)
    return owner, msg_b, contact


def test_the_documented_example_is_reproduced() -> None:
    owner = OwnerPake(CODE, entropy=lambda n: b"\x01" * n)
    msg_b, contact = contact_pake(CODE, owner.message, entropy=lambda n: b"\x02" * n)
    keys = owner.finish(msg_b)
    assert (b64(owner.message), b64(msg_b)) == (MSG_A, MSG_B)
    assert b64(keys.contact_confirm()) == CONFIRM_B == b64(contact.contact_confirm())
    assert b64(keys.owner_confirm()) == CONFIRM_A == b64(contact.owner_confirm())
    assert b64(keys.seal(b'{"v":1}', rng=lambda n: b"\x00" * n)) == SEALED
    # The confirmation is HMAC-SHA256 over the documented transcript (standard library).
    transcript = b"safehold.pake/v1\n417\n" + owner.message + msg_b
    assert keys.transcript == transcript
    salt = hashlib.sha256(transcript).digest()
    assert hmac.digest(keys.contact_confirm_key, transcript, "sha256") == \
        keys.contact_confirm() and len(salt) == 32
    docs = DOCS.read_text(encoding="utf-8")
    for shown in (MSG_A, MSG_B, CONFIRM_A, CONFIRM_B, SEALED, CODE.text()):
        assert shown in docs, f"docs/protocol.md should show {shown!r}"


def test_both_sides_agree_and_the_payload_opens() -> None:
    owner, msg_b, contact = _pair()
    keys = owner.finish(msg_b)
    keys.check_contact_confirm(contact.contact_confirm())
    contact.check_owner_confirm(keys.owner_confirm())
    assert contact.open(keys.seal(b"the long code")) == b"the long code"


def test_the_owner_state_survives_serialisation() -> None:
    owner = OwnerPake(CODE)
    again = OwnerPake(CODE, owner.state())
    assert again.message == owner.message
    msg_b, contact = contact_pake(CODE, owner.message)
    again.finish(msg_b).check_contact_confirm(contact.contact_confirm())


def test_a_wrong_code_fails_the_owners_check_and_opens_nothing() -> None:
    wrong = ShortCode("417", ("guitarist", "passenger" if CODE.words[1] != "passenger"
                                             else "revenge"))
    owner, msg_b, contact = _pair(CODE, wrong)
    keys = owner.finish(msg_b)
    with pytest.raises(ConfirmationFailed):
        keys.check_contact_confirm(contact.contact_confirm())
    with pytest.raises(ConfirmationFailed):
        contact.open(keys.seal(b"secret"))


def test_another_nameplate_or_a_replayed_message_fails_confirmation() -> None:
    owner, msg_b, contact = _pair(CODE, ShortCode("418", CODE.words))
    with pytest.raises(ConfirmationFailed):
        owner.finish(msg_b).check_contact_confirm(contact.contact_confirm())
    earlier_owner, earlier_b, earlier_contact = _pair()
    fresh = OwnerPake(CODE)  # a claim replayed from another exchange of the same words
    with pytest.raises(ConfirmationFailed):
        fresh.finish(earlier_b).check_contact_confirm(earlier_contact.contact_confirm())


def test_reflected_and_malformed_messages_are_refused() -> None:
    owner = OwnerPake(CODE)
    with pytest.raises(MalformedError):
        OwnerPake(CODE, owner.state()).finish(owner.message)  # its own message, reflected
    with pytest.raises(MalformedError):
        contact_pake(CODE, b"B" + owner.message[1:])
    with pytest.raises(ConfirmationFailed):
        contact_pake(CODE, b"A" + b"\xff" * 32)  # not a group element


def test_code_shape_parsing_and_word_lists() -> None:
    assert len(EVEN) == len(ODD) == 256 and len(set(EVEN) | set(ODD)) == 512
    assert (ODD[0x69], EVEN[0xA9]) == ("guitarist", "revenge")  # PGP list, bytes 69 and A9
    for spoken in ("  417 Guitarist  REVENGE\n", "417--guitarist-revenge", "417-guitarist revenge"):
        assert ShortCode.parse(spoken) == CODE and looks_short(spoken)
    for bad in ("0417-guitarist-revenge", "417-revenge-guitarist", "417-guitarist",
                "417-guitarist-revenge-x", "x-guitarist-revenge", "1234567-guitarist-revenge"):
        with pytest.raises(MalformedError):
            ShortCode.parse(bad)
    assert not looks_short("-AAAAAAAAAAAAAAAAAAAAA.BBBB")
    made = new_short_code("9", lambda n: bytes([0x69, 0xA9])[:n])
    assert made.text() == "9-guitarist-revenge"
