"""age ASCII armor: strict RFC 7468 PEM with the label `AGE ENCRYPTED FILE`.

Accepted: optional whitespace before the BEGIN line and after the END line, LF or CRLF line
ends, no newline after END. Refused: headers, checksums, blank or whitespace-padded lines,
lines other than 64 columns except a shorter non-empty last one, missing or non-canonical
padding. The decoder streams line by line in constant memory.
"""

from __future__ import annotations

import base64
import binascii
import re

from crypto.errors import ArmorError

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
COLUMNS = 64
BYTES_PER_LINE = 48
MAX_WHITESPACE = 1024  # around the armor; more is refused rather than skipped forever
MAX_LINE = 2 * COLUMNS  # a longer unfinished line is refused early (constant memory)
_WHITESPACE = b" \t\r\n\v\f"
_PADDED_B64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


def armor(data: bytes) -> bytes:
    """Armor binary age data exactly as `age -a` does (LF line ends)."""
    text = base64.b64encode(data)
    lines = [text[i : i + COLUMNS] for i in range(0, len(text), COLUMNS)]
    return b"\n".join([BEGIN, *lines, END]) + b"\n"


def _decode_line(line: bytes) -> bytes:
    if not _PADDED_B64.fullmatch(line) or len(line) % 4:
        raise ArmorError("armored data line is not valid padded base64")
    data = binascii.a2b_base64(line, strict_mode=True)
    if base64.b64encode(data) != line:
        raise ArmorError("armored data line is not canonical base64")
    return data


class ArmorDecoder:
    """Feed armored text with update(); get the binary age bytes back as they decode."""

    def __init__(self) -> None:
        self._pending = b""
        self._state = "before"  # before -> data -> after
        self._expect_end = False  # a short data line was seen: END must follow
        self._whitespace = 0

    def update(self, data: bytes) -> bytes:
        text = self._pending + bytes(data)
        out: list[bytes] = []
        start = 0
        while (newline := text.find(b"\n", start)) >= 0:
            out.append(self._line(text[start:newline], terminated=True))
            start = newline + 1
        self._pending = text[start:]
        if self._state == "after":
            self._count_whitespace(self._pending)
            self._pending = b""
        elif self._state == "data" and len(self._pending) > MAX_LINE:
            raise ArmorError("armor line too long")
        elif len(self._pending) > MAX_WHITESPACE:
            raise ArmorError("not an age file: no armor BEGIN line")
        return b"".join(out)

    def finalize(self) -> bytes:
        """Decode the last (unterminated) line and check that the armor was complete."""
        out = self._line(self._pending, terminated=False) if self._pending else b""
        self._pending = b""
        if self._state != "after":
            raise ArmorError("armor has no END line")
        return out

    def _line(self, raw: bytes, terminated: bool) -> bytes:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if self._state == "before":
            if not line.strip(_WHITESPACE):
                self._count_whitespace(raw + b"\n")
                return b""
            if line != BEGIN:
                raise ArmorError("not an age file: expected binary age or an armor BEGIN line")
            self._state = "data"
            return b""
        if self._state == "after":
            self._count_whitespace(raw + b"\n")
            return b""
        if line == END:
            self._state = "after"
            self._whitespace = 0
            return b""
        if not terminated:
            raise ArmorError("armor has no END line")
        return self._data_line(line)

    def _data_line(self, line: bytes) -> bytes:
        if self._expect_end:
            raise ArmorError("armor data continues after a short line")
        if not line or len(line) > COLUMNS:
            raise ArmorError("armor data line must be 1 to 64 columns")
        data = _decode_line(line)
        if len(data) < BYTES_PER_LINE:
            self._expect_end = True
        return data

    def _count_whitespace(self, chunk: bytes) -> None:
        if chunk.strip(_WHITESPACE):
            raise ArmorError("unexpected data outside the armor")
        self._whitespace += len(chunk)
        if self._whitespace > MAX_WHITESPACE:
            raise ArmorError("too much whitespace around the armor")
