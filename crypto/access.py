"""The access record: one leaf of an encounter's Merkle log per read by a trusted contact.

The server appends it (as a note signed with its own key) to the log of the encounter that was
read, so who saw the evidence, what and when is as tamper-evident as the evidence itself. The
note body is five lines, each ending in "\\n", in exactly this order:

    safehold.access/v1
    encounter <lowercase uuid>
    contact <lowercase uuid: the contact's id>
    what <list | log | chunk <stream>/<seqs> | descriptor <stream>/<seqs>>
    time <server time, RFC 3339 UTC with milliseconds>

`what`: `list` = the encounter and which chunks it holds; `log` = checkpoints, proofs or
leaves of its log; `chunk` = a chunk's bytes (whole or a byte range); `descriptor` = a chunk's
receipt and signed descriptor. `<seqs>` is one seq, or `<first>-<last>` (first < last) for a
batch read of that stream's stored chunks from first to last inclusive: one record per request,
however many chunks it served. Parsing is strict: one record, one encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crypto.descriptor import check_time
from crypto.errors import MalformedError
from crypto.signing import open_note, sign_note
from crypto.slot import check_encounter, check_seq, check_stream, parse_seq

TYPE_TAG = "safehold.access/v1"
FIELDS = ("encounter", "contact", "what", "time")
WHAT_LIST = "list"
WHAT_LOG = "log"
_SLOT_WHAT = re.compile(r"(chunk|descriptor) ([^ /]+)/([^ /-]+)(?:-([^ /-]+))?")


def _seqs(first: int, last: int | None) -> str:
    return str(first) if last is None or last == first else f"{first}-{last}"


def what_chunk(stream: str, seq: int, last: int | None = None) -> str:
    """A chunk's bytes; with `last`, a batch of the stream's chunks `seq` to `last`."""
    return check_what(f"chunk {stream}/{_seqs(seq, last)}")


def what_descriptor(stream: str, seq: int, last: int | None = None) -> str:
    """A chunk's receipt; with `last`, a batch of the stream's receipts `seq` to `last`."""
    return check_what(f"descriptor {stream}/{_seqs(seq, last)}")


def check_what(value: object) -> str:
    """Return `value` if it is one of the `what` forms above; else MalformedError."""
    if value in (WHAT_LIST, WHAT_LOG):
        return str(value)
    match = _SLOT_WHAT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise MalformedError(f"what must be list, log, chunk S/N[-M] or descriptor S/N[-M]: "
                             f"{value!r}")
    check_stream(match.group(2))
    first = check_seq(parse_seq(match.group(3)))
    if match.group(4) is not None and check_seq(parse_seq(match.group(4))) <= first:
        raise MalformedError(f"a range of seqs must go up: {value!r}")
    return str(value)


@dataclass(frozen=True)
class AccessRecord:
    encounter: str
    contact: str
    what: str
    time: str

    def __post_init__(self) -> None:
        check_encounter(self.encounter)
        try:
            check_encounter(self.contact)
        except MalformedError:
            raise MalformedError(f"contact id must be a lowercase UUID, got {self.contact!r}")
        check_what(self.what)
        check_time(self.time)

    def text(self) -> str:
        values = (self.encounter, self.contact, self.what, self.time)
        lines = [TYPE_TAG] + [f"{n} {v}" for n, v in zip(FIELDS, values, strict=True)]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> AccessRecord:
        if not isinstance(text, str) or not text.endswith("\n"):
            raise MalformedError("an access record is text ending in a newline")
        lines = text[:-1].split("\n")
        if len(lines) != len(FIELDS) + 1 or lines[0] != TYPE_TAG:
            raise MalformedError(f"an access record is {TYPE_TAG!r} and {len(FIELDS)} lines")
        values = []
        for line, name in zip(lines[1:], FIELDS, strict=True):
            key, sep, value = line.partition(" ")
            if key != name or not sep or not value:
                raise MalformedError(f"access record line should start with {name!r}")
            values.append(value)
        record = cls(*values)
        if record.text() != text:
            raise MalformedError("access record is not in canonical form")
        return record


def sign_access(record: AccessRecord, server_signing_key: str) -> str:
    """The record as a note signed by the server: the exact bytes of the log leaf."""
    return sign_note(record.text(), server_signing_key)


def open_access(note: str, server_verifier: str) -> AccessRecord:
    """The record in a leaf if the server's key signed it; BadSignature / MalformedError."""
    return AccessRecord.parse(open_note(note, [server_verifier]))
