"""The share grant: what the owner's device signs when it re-wraps one chunk to a recipient.

The note body is nine lines, each ending in "\\n", in exactly this order:

    safehold.grant/v1
    encounter <lowercase uuid>
    stream <stream name>
    seq <canonical decimal>
    recipient <age1... the recipient the new header is sealed to>
    chunk <64 lowercase hex: SHA-256 of the whole original age file (as in its descriptor)>
    payload <canonical decimal: where the payload starts in the original file>
    header <64 lowercase hex: SHA-256 of the new header, up to and including its MAC line>
    time <device time, RFC 3339 UTC with milliseconds>

It is a C2SP signed note signed by a device key of the owner's roster. With it anyone can
check, without a key, that `new header || original[payload:]` carries exactly the payload
bytes the device signed for in the chunk's descriptor: original[:payload] + those bytes must
hash to `chunk`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from crypto.age import read_header, validate_recipient, x25519_stanza_count
from crypto.descriptor import check_time
from crypto.errors import MalformedError
from crypto.signing import open_note_signers, sign_note
from crypto.slot import check_encounter, check_seq, check_stream, parse_decimal, parse_seq

TYPE_TAG = "safehold.grant/v1"
FIELDS = ("encounter", "stream", "seq", "recipient", "chunk", "payload", "header", "time")
MAX_HEADER = 64 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _hex(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise MalformedError(f"{what} must be 64 lowercase hex digits")
    return value


@dataclass(frozen=True)
class Grant:
    encounter: str
    stream: str
    seq: int
    recipient: str
    chunk_sha256: str
    payload_offset: int
    header_sha256: str
    time: str

    def __post_init__(self) -> None:
        check_encounter(self.encounter)
        check_stream(self.stream)
        check_seq(self.seq)
        validate_recipient(self.recipient)
        _hex(self.chunk_sha256, "chunk")
        _hex(self.header_sha256, "header")
        if not isinstance(self.payload_offset, int) or isinstance(self.payload_offset, bool) \
                or not 0 < self.payload_offset <= MAX_HEADER:
            raise MalformedError("payload must be a header length in (0, 65536]")
        check_time(self.time)

    def text(self) -> str:
        values = (self.encounter, self.stream, str(self.seq), self.recipient, self.chunk_sha256,
                  str(self.payload_offset), self.header_sha256, self.time)
        lines = [TYPE_TAG, *(f"{k} {v}" for k, v in zip(FIELDS, values, strict=True))]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Grant:
        lines = text.split("\n")
        if len(lines) != len(FIELDS) + 2 or lines[0] != TYPE_TAG or lines[-1] != "":
            raise MalformedError("not a safehold.grant/v1 statement")
        values: list[str] = []
        for field, line in zip(FIELDS, lines[1:-1], strict=True):
            key, space, value = line.partition(" ")
            if key != field or not space:
                raise MalformedError(f"grant line {field!r} missing or out of order")
            values.append(value)
        grant = cls(values[0], values[1], parse_seq(values[2]), values[3], values[4],
                    parse_decimal(values[5], "payload"), values[6], values[7])
        if grant.text() != text:
            raise MalformedError("grant is not in canonical form")
        return grant


def sign_grant(grant: Grant, signing_key: str) -> str:
    return sign_note(grant.text(), signing_key)


def open_grant(note: str, verifiers: Sequence[str]) -> tuple[Grant, list[str]]:
    """The grant and which of `verifiers` (the owner roster's device keys) signed it."""
    text, signers = open_note_signers(note, verifiers)
    return Grant.parse(text), signers


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_grant_header(grant: Grant, header: bytes) -> None:
    """That `header` is the one the grant signed for, for the grant's chunk, and a plain
    re-wrap: the slot stanza of that chunk and exactly one X25519 stanza. MalformedError."""
    if sha256_hex(header) != grant.header_sha256:
        raise MalformedError("the header is not the one the grant signed (SHA-256 differs)")
    parsed = read_header(header)
    if parsed.payload_offset != len(header):
        raise MalformedError("the header has bytes after its MAC line")
    slot = parsed.slot
    if slot is None or (slot.encounter, slot.stream, slot.seq) != \
            (grant.encounter, grant.stream, grant.seq):
        raise MalformedError("the header's slot stanza names another chunk than the grant")
    if x25519_stanza_count(parsed) != 1 or len(parsed.stanzas) != 2:
        raise MalformedError("a re-wrapped header holds the slot stanza and one X25519 stanza")
