"""Chunk descriptors and slots: exact text, signed round trip, strict refusal of any deviation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from crypto.descriptor import (
    ChunkDescriptor,
    describe_chunk,
    format_time,
    open_descriptor,
    parse_time,
    sign_descriptor,
    verify_descriptor,
)
from crypto.errors import BadSignature, MalformedError
from crypto.signing import generate_signing_key, sign_note, signing_key_from_seed, verifier_key
from crypto.slot import Slot

ENCOUNTER = "3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b"
AGE_FILE = b"age-encryption.org/v1\n-> X25519 stand-in bytes for a sealed chunk\n" * 3
SLOT = Slot(ENCOUNTER, "audio", 7, False)
TIME = "2026-11-28T03:30:01.123Z"

# Written out by hand from the format in docs/protocol.md, not produced by the code under test.
EXPECTED_TEXT = (
    "safehold.chunk/v1\n"
    f"encounter {ENCOUNTER}\n"
    "stream audio\n"
    "seq 7\n"
    "end more\n"
    f"size {len(AGE_FILE)}\n"
    f"sha256 {hashlib.sha256(AGE_FILE).hexdigest()}\n"
    f"time {TIME}\n"
)


@pytest.fixture(scope="module")
def device_key() -> str:
    return generate_signing_key("device-5b0c")


def test_descriptor_text_is_the_documented_format() -> None:
    desc = describe_chunk(AGE_FILE, SLOT, TIME)
    assert desc.text() == EXPECTED_TEXT
    assert desc.size == len(AGE_FILE)
    assert desc.sha256 == hashlib.sha256(AGE_FILE).hexdigest()
    assert desc.slot == SLOT
    assert ChunkDescriptor.parse(EXPECTED_TEXT) == desc


def test_final_chunk_says_final() -> None:
    desc = describe_chunk(b"", Slot(ENCOUNTER, "log", 0, True), TIME)
    assert "\nend final\n" in desc.text()
    assert "\nsize 0\n" in desc.text()
    assert desc.sha256 == hashlib.sha256(b"").hexdigest()
    assert ChunkDescriptor.parse(desc.text()).final is True


def test_signed_descriptor_round_trip(device_key: str) -> None:
    desc = describe_chunk(AGE_FILE, SLOT, TIME)
    note = sign_descriptor(desc, device_key)
    assert note.startswith(EXPECTED_TEXT + "\n\u2014 device-5b0c ")
    assert verify_descriptor(note, verifier_key(device_key)) == desc
    other = verifier_key(generate_signing_key("device-other"))
    assert open_descriptor(note, [other, verifier_key(device_key)]) == (
        desc,
        [verifier_key(device_key)],
    )


def test_descriptor_signed_by_another_device_is_refused(device_key: str) -> None:
    note = sign_descriptor(
        describe_chunk(AGE_FILE, SLOT, TIME), generate_signing_key("device-5b0c")
    )
    with pytest.raises(BadSignature):
        verify_descriptor(note, verifier_key(device_key))


@pytest.mark.parametrize(
    "old, new",
    [("seq 7", "seq 8"), ("end more", "end final"), ("stream audio", "stream video")],
)
def test_altered_signed_descriptor_is_refused(device_key: str, old: str, new: str) -> None:
    note = sign_descriptor(describe_chunk(AGE_FILE, SLOT, TIME), device_key)
    with pytest.raises(BadSignature):
        verify_descriptor(note.replace(old, new), verifier_key(device_key))


def test_validly_signed_but_malformed_body_is_refused(device_key: str) -> None:
    note = sign_note(EXPECTED_TEXT.replace("seq 7", "seq 07"), device_key)
    with pytest.raises(MalformedError):
        verify_descriptor(note, verifier_key(device_key))


def _lines() -> list[str]:
    return EXPECTED_TEXT.splitlines(keepends=True)


def _swap(i: int, j: int) -> str:
    lines = _lines()
    lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


MALFORMED = {
    "empty": "",
    "no final newline": EXPECTED_TEXT[:-1],
    "extra blank line": EXPECTED_TEXT + "\n",
    "extra field": EXPECTED_TEXT + "note hello\n",
    "missing line": "".join(_lines()[:-1]),
    "lines reordered": _swap(3, 4),
    "type tag first is required": _swap(0, 1),
    "other type tag": EXPECTED_TEXT.replace("safehold.chunk/v1", "safehold.chunk/v2"),
    "crlf": EXPECTED_TEXT.replace("\n", "\r\n"),
    "double space": EXPECTED_TEXT.replace("seq 7", "seq  7"),
    "tab": EXPECTED_TEXT.replace("seq 7", "seq\t7"),
    "trailing space": EXPECTED_TEXT.replace("seq 7", "seq 7 "),
    "key upper case": EXPECTED_TEXT.replace("seq 7", "SEQ 7"),
    "seq leading zero": EXPECTED_TEXT.replace("seq 7", "seq 07"),
    "seq plus sign": EXPECTED_TEXT.replace("seq 7", "seq +7"),
    "seq 2**32": EXPECTED_TEXT.replace("seq 7", f"seq {2**32}"),
    "seq negative": EXPECTED_TEXT.replace("seq 7", "seq -1"),
    "seq non-ascii digit": EXPECTED_TEXT.replace("seq 7", "seq \u0667"),
    "seq hex": EXPECTED_TEXT.replace("seq 7", "seq 0x7"),
    "end other word": EXPECTED_TEXT.replace("end more", "end Final"),
    "size leading zero": EXPECTED_TEXT.replace("size ", "size 0"),
    "size negative": EXPECTED_TEXT.replace("size ", "size -"),
    "size too big": EXPECTED_TEXT.replace(f"size {len(AGE_FILE)}", f"size {2**63}"),
    "sha256 upper case": EXPECTED_TEXT.replace(
        hashlib.sha256(AGE_FILE).hexdigest(), hashlib.sha256(AGE_FILE).hexdigest().upper()
    ),
    "sha256 short": EXPECTED_TEXT.replace(hashlib.sha256(AGE_FILE).hexdigest(), "ab" * 31),
    "uuid upper case": EXPECTED_TEXT.replace(ENCOUNTER, ENCOUNTER.upper()),
    "uuid no hyphens": EXPECTED_TEXT.replace(ENCOUNTER, ENCOUNTER.replace("-", "")),
    "uuid braces": EXPECTED_TEXT.replace(ENCOUNTER, "{" + ENCOUNTER + "}"),
    "stream upper case": EXPECTED_TEXT.replace("stream audio", "stream Audio"),
    "stream starts with digit": EXPECTED_TEXT.replace("stream audio", "stream 1audio"),
    "stream too long": EXPECTED_TEXT.replace("stream audio", "stream a" + "b" * 32),
    "stream with slash": EXPECTED_TEXT.replace("stream audio", "stream au/dio"),
    "time without ms": EXPECTED_TEXT.replace(TIME, "2026-11-28T03:30:01Z"),
    "time with us": EXPECTED_TEXT.replace(TIME, "2026-11-28T03:30:01.123456Z"),
    "time with offset": EXPECTED_TEXT.replace(TIME, "2026-11-28T03:30:01.123+00:00"),
    "time lower z": EXPECTED_TEXT.replace(TIME, "2026-11-28T03:30:01.123z"),
    "time space separator": EXPECTED_TEXT.replace(TIME, "2026-11-28 03:30:01.123Z"),
    "time impossible date": EXPECTED_TEXT.replace(TIME, "2026-02-30T03:30:01.123Z"),
    "time hour 24": EXPECTED_TEXT.replace(TIME, "2026-11-28T24:00:00.000Z"),
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_strict_parse_refuses(text: str) -> None:
    with pytest.raises(MalformedError):
        ChunkDescriptor.parse(text)


@pytest.mark.parametrize(
    "field, value",
    [
        ("seq", -1),
        ("seq", 2**32),
        ("seq", True),
        ("size", -1),
        ("size", 2**63),
        ("sha256", "00"),
        ("device_time", "yesterday"),
        ("encounter", "not-a-uuid"),
        ("stream", ""),
        ("final", "yes"),
    ],
)
def test_constructing_an_invalid_descriptor_is_refused(field: str, value: object) -> None:
    fields = describe_chunk(AGE_FILE, SLOT, TIME).__dict__ | {field: value}
    with pytest.raises(MalformedError):
        ChunkDescriptor(**fields)


def test_slot_wire_args_round_trip_and_strictness() -> None:
    assert SLOT.wire_args() == (ENCOUNTER, "audio", "7", "more")
    assert Slot.from_wire_args(SLOT.wire_args()) == SLOT
    last = Slot(ENCOUNTER, "video", 2**32 - 1, True)
    assert Slot.from_wire_args(last.wire_args()) == last
    for bad in [
        (ENCOUNTER, "audio", "7"),
        (ENCOUNTER, "audio", "7", "more", "extra"),
        (ENCOUNTER, "audio", "007", "more"),
        (ENCOUNTER, "audio", "7", "done"),
        (ENCOUNTER, "audio", str(2**32), "final"),
        (ENCOUNTER.upper(), "audio", "7", "more"),
    ]:
        with pytest.raises(MalformedError):
            Slot.from_wire_args(bad)


def test_time_helpers() -> None:
    moment = datetime(2026, 11, 28, 4, 30, 1, 123999, tzinfo=timezone(timedelta(hours=1)))
    assert format_time(moment) == TIME  # converted to UTC, milliseconds truncated
    assert parse_time(TIME) == datetime(2026, 11, 28, 3, 30, 1, 123000, tzinfo=UTC)
    with pytest.raises(MalformedError):
        format_time(datetime(2026, 11, 28, 3, 30, 1))  # naive: which zone?


def documented_example(name: str) -> str:
    """The fenced block after `<!-- example: NAME -->` in docs/protocol.md, as note text."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text("utf-8")
    after = doc.split(f"<!-- example: {name} -->\n```\n", 1)[1]
    return after.split("```", 1)[0]


def test_documented_signed_descriptor_is_reproduced_byte_for_byte() -> None:
    seed = hashlib.sha256(b"safehold example device key").digest()
    key = signing_key_from_seed("device-7d4f1c2a-93b0-4e8e-a6c5-1f2e3d4c5b6a", seed)
    slot = Slot("3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b", "audio", 7, False)
    desc = describe_chunk(b"example age file bytes", slot, TIME)
    documented = documented_example("signed-descriptor")
    assert sign_descriptor(desc, key) == documented
    assert verify_descriptor(documented, verifier_key(key)) == desc
