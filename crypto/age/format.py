"""The age v1 header: strict parsing and canonical encoding (C2SP age, "Header").

Parsing is strict so that every header has exactly one byte encoding: the header MAC is then
computed over the bytes as received, and any deviation (non-canonical base64, stray spaces, CR,
short lines in the wrong place) is refused as MalformedError before a key is ever touched.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from crypto.errors import MalformedError
from crypto.slot import Slot

MAGIC = b"age-encryption.org/"
VERSION_LINE = b"age-encryption.org/v1"
MAC_PREFIX = b"---"
STANZA_PREFIX = b"->"
COLUMNS = 64  # base64 characters per body line; 48 bytes
MAX_HEADER_BYTES = 1 << 20  # a header larger than this is refused rather than buffered
SLOT_TYPE = "safehold-slot"
X25519_TYPE = "X25519"
SCRYPT_TYPE = "scrypt"
MAX_WORK_FACTOR_SYNTAX = 64  # larger log2(N) values cannot be computed anyway

_RAW_B64 = re.compile(rb"[A-Za-z0-9+/]*")
# A stanza line: "->", then one or more words of printable ASCII (VCHAR), single spaces between.
_STANZA_LINE = re.compile(rb"-> [\x21-\x7e]+(?: [\x21-\x7e]+)*")
_VCHAR_WORD = re.compile(r"[\x21-\x7e]+")
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: `-> type args...` and its binary body."""

    type: str
    args: tuple[str, ...]
    body: bytes


@dataclass(frozen=True)
class Header:
    """A parsed header. `header_bytes` ends after the MAC line; the payload nonce follows."""

    stanzas: tuple[Stanza, ...]
    slot: Slot | None
    header_bytes: bytes
    payload_offset: int

    @property
    def mac(self) -> bytes:
        line = self.header_bytes[self.header_bytes.rindex(b"\n", 0, -1) + 1 : -1]
        return b64decode_raw(line[len(MAC_PREFIX) + 1 :])

    @property
    def mac_input(self) -> bytes:
        """The bytes the header MAC covers: everything up to and including `---`."""
        return self.header_bytes[: self.header_bytes.rindex(b"\n", 0, -1) + 1 + len(MAC_PREFIX)]


def b64encode_raw(data: bytes) -> bytes:
    """Unpadded standard base64, as age uses in headers."""
    return base64.b64encode(data).rstrip(b"=")


def b64decode_raw(text: bytes) -> bytes:
    """Strict unpadded base64: alphabet only, no padding, canonical trailing bits."""
    if not _RAW_B64.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedError("header contains invalid base64")
    data = binascii.a2b_base64(text + b"=" * (-len(text) % 4), strict_mode=True)
    if b64encode_raw(data) != text:
        raise MalformedError("header contains non-canonical base64")
    return data


def find_header_end(buf: bytes | bytearray, start: int = 0) -> int:
    """Offset just past the MAC line's newline, or -1 if the MAC line is not complete yet.

    The first line starting with `---` ends the header: base64 body lines cannot start with `-`.
    """
    # Resume at the last newline before `start`: the MAC line may have begun there already.
    mac_at = buf.find(b"\n" + MAC_PREFIX, max(buf.rfind(b"\n", 0, start), 0))
    if mac_at < 0:
        return -1
    newline = buf.find(b"\n", mac_at + 1)
    return -1 if newline < 0 else newline + 1


def _parse_stanza_line(line: bytes) -> tuple[str, tuple[str, ...]]:
    if not _STANZA_LINE.fullmatch(line):
        raise MalformedError("malformed stanza line in header")
    words = line[len(STANZA_PREFIX) + 1 :].decode("ascii").split(" ")
    return words[0], tuple(words[1:])


def _read_body(lines: list[bytes], i: int) -> tuple[bytes, int]:
    """Decode body lines from index i; return (body, index after the body)."""
    parts: list[bytes] = []
    while True:
        if i >= len(lines) - 1:
            raise MalformedError("header ends inside a stanza body")
        line = lines[i]
        if len(line) > COLUMNS:
            raise MalformedError("stanza body line longer than 64 columns")
        parts.append(b64decode_raw(line))
        i += 1
        if len(line) < COLUMNS:  # only the last line of a body is short (possibly empty)
            return b"".join(parts), i


def _parse_mac_line(line: bytes) -> None:
    words = line.split(b" ")
    if words[0] != MAC_PREFIX or len(words) != 2 or len(b64decode_raw(words[1])) != 32:
        raise MalformedError("malformed header MAC line")


def parse_header(data: bytes) -> Header:
    """Parse the header at the start of `data` (which may continue with the payload)."""
    end = find_header_end(data)
    if end < 0:
        if len(data) == 0:
            raise MalformedError("empty input: not an age file")
        raise MalformedError("not an age file, or its header is incomplete")
    header_bytes = bytes(data[:end])
    lines = header_bytes.split(b"\n")
    if lines[0] != VERSION_LINE:
        raise MalformedError("not an age v1 file (unknown version line)")
    stanzas: list[Stanza] = []
    i = 1
    while not lines[i].startswith(MAC_PREFIX):
        if not lines[i].startswith(STANZA_PREFIX):
            raise MalformedError("unexpected line in header")
        type_, args = _parse_stanza_line(lines[i])
        body, i = _read_body(lines, i + 1)
        stanzas.append(Stanza(type_, args, body))
    if i != len(lines) - 2:
        raise MalformedError("header MAC line is not where the header ends")
    _parse_mac_line(lines[i])
    slot = check_stanzas(stanzas)
    return Header(tuple(stanzas), slot, header_bytes, end)


def check_stanzas(stanzas: list[Stanza]) -> Slot | None:
    """Structural rules for the stanza types we know; returns the slot if there is one."""
    if not stanzas:
        raise MalformedError("header has no recipient stanzas")
    slot: Slot | None = None
    for stanza in stanzas:
        if stanza.type == X25519_TYPE:
            _check_x25519(stanza)
        elif stanza.type == SCRYPT_TYPE:
            _check_scrypt(stanza, alone=len(stanzas) == 1)
        elif stanza.type == SLOT_TYPE:
            if slot is not None:
                raise MalformedError("header has more than one safehold-slot stanza")
            slot = _parse_slot(stanza)
    return slot


def _check_x25519(stanza: Stanza) -> None:
    if len(stanza.args) != 1 or len(b64decode_raw(stanza.args[0].encode())) != 32:
        raise MalformedError("malformed X25519 stanza arguments")
    if len(stanza.body) != 32:
        raise MalformedError("X25519 stanza body must wrap a 16-byte file key")


def _check_scrypt(stanza: Stanza, alone: bool) -> None:
    if not alone:
        raise MalformedError("an scrypt stanza must be the only stanza in the header")
    if len(stanza.args) != 2 or len(b64decode_raw(stanza.args[0].encode())) != 16:
        raise MalformedError("malformed scrypt stanza arguments")
    if not _WORK_FACTOR.fullmatch(stanza.args[1]):
        raise MalformedError("scrypt work factor must be a decimal without leading zeros")
    if len(stanza.args[1]) > 2 or int(stanza.args[1]) > MAX_WORK_FACTOR_SYNTAX:
        raise MalformedError("scrypt work factor is out of range")
    if len(stanza.body) != 32:
        raise MalformedError("scrypt stanza body must wrap a 16-byte file key")


def scrypt_params(stanza: Stanza) -> tuple[bytes, int]:
    """Salt and log2(N) of a stanza that passed check_stanzas."""
    return b64decode_raw(stanza.args[0].encode()), int(stanza.args[1])


def _parse_slot(stanza: Stanza) -> Slot:
    if stanza.body:
        raise MalformedError("safehold-slot stanza must have an empty body")
    return Slot.from_wire_args(stanza.args)


def slot_stanza(slot: Slot) -> Stanza:
    return Stanza(SLOT_TYPE, slot.wire_args(), b"")


def encode_stanza(stanza: Stanza) -> bytes:
    words = [stanza.type, *stanza.args]
    if not all(_VCHAR_WORD.fullmatch(word) for word in words):
        raise MalformedError("stanza words must be non-empty printable ASCII without spaces")
    text = b64encode_raw(stanza.body)
    lines = [text[i : i + COLUMNS] for i in range(0, len(text), COLUMNS)]
    if not lines or len(lines[-1]) == COLUMNS:
        lines.append(b"")  # the body always ends with a short (maybe empty) line
    return b"-> " + " ".join(words).encode("ascii") + b"\n" + b"\n".join(lines) + b"\n"


def encode_header_without_mac(stanzas: list[Stanza]) -> bytes:
    """Version line and stanzas, ending in `---`: the exact input of the header MAC."""
    return b"".join([VERSION_LINE, b"\n", *map(encode_stanza, stanzas), MAC_PREFIX])


def mac_line_suffix(mac: bytes) -> bytes:
    return b" " + b64encode_raw(mac) + b"\n"
