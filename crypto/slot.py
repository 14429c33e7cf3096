"""A chunk's place in an encounter, and the validators for its parts.

Shared by crypto/age/__init__.py (the `safehold-slot` stanza) and crypto/descriptor.py (the signed
descriptor), so both refuse exactly the same malformed values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crypto.errors import MalformedError

SEQ_LIMIT = 2**32
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STREAM = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Canonical decimal: no sign, no leading zeros (except "0" itself), ASCII digits only.
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
END_WORDS = {"more": False, "final": True}


def check_encounter(value: object) -> str:
    """Return `value` if it is a lowercase, hyphenated UUID string; else MalformedError."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise MalformedError(f"encounter id must be a lowercase UUID, got {value!r}")
    return value


def check_stream(value: object) -> str:
    """Return `value` if it is a valid stream name ([a-z][a-z0-9_-]{0,31}); else MalformedError."""
    if not isinstance(value, str) or not _STREAM.fullmatch(value):
        raise MalformedError(f"stream name must match [a-z][a-z0-9_-]{{0,31}}, got {value!r}")
    return value


def check_seq(value: object) -> int:
    """Return `value` if it is an int with 0 <= value < 2**32; else MalformedError."""
    # bool is an int subclass; True is not a sequence number.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SEQ_LIMIT:
        raise MalformedError(f"seq must be an integer in [0, 2**32), got {value!r}")
    return value


def parse_decimal(text: str, what: str = "number") -> int:
    """Parse a canonical non-negative decimal (no sign, no leading zeros); else MalformedError."""
    if not _DECIMAL.fullmatch(text):
        raise MalformedError(f"{what} must be a canonical decimal, got {text!r}")
    return int(text)


def parse_seq(text: str) -> int:
    """Parse the wire form of a sequence number."""
    return check_seq(parse_decimal(text, "seq"))


def parse_end(word: str) -> bool:
    """Parse the wire form of the final flag: "final" -> True, "more" -> False."""
    if word not in END_WORDS:
        raise MalformedError(f"end marker must be 'more' or 'final', got {word!r}")
    return END_WORDS[word]


def end_word(final: bool) -> str:
    """The wire form of the final flag."""
    return "final" if final else "more"


@dataclass(frozen=True)
class Slot:
    """Where a chunk belongs: encounter, stream, sequence number, and whether it is the last."""

    encounter: str
    stream: str
    seq: int
    final: bool

    def __post_init__(self) -> None:
        check_encounter(self.encounter)
        check_stream(self.stream)
        check_seq(self.seq)
        if not isinstance(self.final, bool):
            raise MalformedError(f"final must be a bool, got {self.final!r}")

    def wire_args(self) -> tuple[str, str, str, str]:
        """The four stanza/descriptor words: encounter, stream, seq, more|final."""
        return (self.encounter, self.stream, str(self.seq), end_word(self.final))

    @classmethod
    def from_wire_args(cls, args: tuple[str, ...] | list[str]) -> Slot:
        """Parse the four words of a `safehold-slot` stanza strictly; else MalformedError."""
        if len(args) != 4:
            raise MalformedError(f"a slot has 4 words, got {len(args)}")
        encounter, stream, seq, end = args
        return cls(check_encounter(encounter), check_stream(stream), parse_seq(seq), parse_end(end))
