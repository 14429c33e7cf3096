"""The chunk descriptor: what a device signs for every chunk it seals.

The note body is eight lines, each ending in "\\n", in exactly this order:

    safehold.chunk/v1
    encounter <lowercase uuid>
    stream <[a-z][a-z0-9_-]{0,31}>
    seq <canonical decimal, 0 <= seq < 2**32>
    end <more|final>
    size <canonical decimal byte count of the age file>
    sha256 <64 lowercase hex: SHA-256 of the whole age file>
    time <device time, RFC 3339 UTC with milliseconds: 2026-11-28T03:30:01.123Z>

The first line is a type tag, so a Merkle leaf holding a signed descriptor says what it is.
Parsing is strict: anything but the exact canonical text is MalformedError, so one descriptor
has exactly one encoding and one signature input.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from crypto.errors import MalformedError
from crypto.signing import open_note_signers, sign_note
from crypto.slot import (
    Slot,
    check_encounter,
    check_seq,
    check_stream,
    end_word,
    parse_decimal,
    parse_end,
    parse_seq,
)

TYPE_TAG = "safehold.chunk/v1"
FIELDS = ("encounter", "stream", "seq", "end", "size", "sha256", "time")
MAX_SIZE = 2**63 - 1  # fits a signed 64-bit integer in every client and database
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def check_time(value: object) -> str:
    """Return `value` if it is RFC 3339 UTC with milliseconds and a real instant; else Malformed."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise MalformedError(f"time must look like 2026-11-28T03:30:01.123Z, got {value!r}")
    try:
        # The pattern fixed every field's place and digits; the constructor checks the ranges
        # exactly as strptime would (no leap seconds), at a tenth of strptime's cost.
        datetime(int(value[0:4]), int(value[5:7]), int(value[8:10]), int(value[11:13]),
                 int(value[14:16]), int(value[17:19]))
    except ValueError:
        raise MalformedError(f"time is not a real calendar instant: {value!r}")
    return value


def format_time(moment: datetime) -> str:
    """A timezone-aware datetime as RFC 3339 UTC with milliseconds (truncated, not rounded)."""
    if moment.tzinfo is None:
        raise MalformedError("time must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """The aware UTC datetime of an RFC 3339 millisecond timestamp (strict)."""
    check_time(text)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _check_size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
        raise MalformedError(f"size must be an integer in [0, 2**63), got {value!r}")
    return value


def _check_sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise MalformedError("sha256 must be 64 lowercase hex digits")
    return value


@dataclass(frozen=True)
class ChunkDescriptor:
    """A chunk's place, size, digest and device time: the body of a signed descriptor note."""

    encounter: str
    stream: str
    seq: int
    final: bool
    size: int
    sha256: str
    device_time: str

    def __post_init__(self) -> None:
        Slot(self.encounter, self.stream, self.seq, self.final)  # validates the four slot fields
        _check_size(self.size)
        _check_sha256(self.sha256)
        check_time(self.device_time)

    @property
    def slot(self) -> Slot:
        return Slot(self.encounter, self.stream, self.seq, self.final)

    def text(self) -> str:
        """The canonical note body (eight lines, each ending in a newline)."""
        values = (
            self.encounter,
            self.stream,
            str(self.seq),
            end_word(self.final),
            str(self.size),
            self.sha256,
            self.device_time,
        )
        lines = [TYPE_TAG] + [f"{name} {value}" for name, value in zip(FIELDS, values, strict=True)]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> ChunkDescriptor:
        """Parse the exact canonical body; MalformedError on any deviation."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise MalformedError("a descriptor is text ending in a newline")
        lines = text[:-1].split("\n")
        if len(lines) != len(FIELDS) + 1 or lines[0] != TYPE_TAG:
            raise MalformedError(f"a descriptor is {TYPE_TAG!r} and {len(FIELDS)} field lines")
        values = [_field_value(line, name) for line, name in zip(lines[1:], FIELDS, strict=True)]
        encounter, stream, seq, end, size, sha256, device_time = values
        desc = cls(
            encounter=check_encounter(encounter),
            stream=check_stream(stream),
            seq=check_seq(parse_seq(seq)),
            final=parse_end(end),
            size=_check_size(parse_decimal(size, "size")),
            sha256=_check_sha256(sha256),
            device_time=check_time(device_time),
        )
        if desc.text() != text:  # belt and braces: one descriptor, one encoding
            raise MalformedError("descriptor is not in canonical form")
        return desc


def _field_value(line: str, name: str) -> str:
    key, sep, value = line.partition(" ")
    if key != name or not sep:
        raise MalformedError(f"descriptor line should start with {name!r}, got {line[:40]!r}")
    if not value or " " in value:
        raise MalformedError(f"descriptor field {name!r} must be one non-empty word")
    return value


def describe_chunk(age_file: bytes, slot: Slot, device_time: str) -> ChunkDescriptor:
    """The descriptor of a sealed chunk: its slot, byte size and SHA-256."""
    return ChunkDescriptor(
        encounter=slot.encounter,
        stream=slot.stream,
        seq=slot.seq,
        final=slot.final,
        size=len(age_file),
        sha256=hashlib.sha256(age_file).hexdigest(),
        device_time=device_time,
    )


def sign_descriptor(desc: ChunkDescriptor, device_signing_key: str) -> str:
    """The descriptor as a signed note, signed by the device."""
    return sign_note(desc.text(), device_signing_key)


def verify_descriptor(note: str, device_verifier: str) -> ChunkDescriptor:
    """The descriptor inside `note` if `device_verifier` signed it; BadSignature/MalformedError."""
    return open_descriptor(note, [device_verifier])[0]


def open_descriptor(note: str, verifiers: Sequence[str]) -> tuple[ChunkDescriptor, list[str]]:
    """The descriptor and which of `verifiers` (e.g. an account's devices) signed it."""
    text, signers = open_note_signers(note, verifiers)
    return ChunkDescriptor.parse(text), signers
