"""What verification finds: problems (errors and warnings) and the facts it establishes.

These plain records are shared by the verifier, the decrypter and the report writer, so that
the terminal, report.json and report.html all say the same thing in the same words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# An error means something was altered, forged, misplaced or inconsistent: `verify` exits 1.
# A warning is reported but proves no alteration (a gap the server never received, a stream
# that was cut off, a file that is not part of the format).
ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    severity: str  # ERROR or WARNING
    check: str  # a stable short code, e.g. "chunk_digest", "slot", "missing_seq"
    message: str  # one sentence naming the file and/or stream and seq
    file: str | None = None
    stream: str | None = None
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Trust:
    """The keys and names a bundle is checked against, as its manifest states them."""

    encounter: str
    server_name: str
    server_url: str
    server_key: str | None  # None when the manifest's key is unusable (then nothing verifies)
    server_fingerprint: str | None
    devices: dict[str, str]  # device id -> verifier key
    device_fingerprints: dict[str, str]
    roster_genesis: str | None = None  # hash of the roster's first statement, when it verified

    @property
    def origin(self) -> str:
        """The checkpoint origin of this encounter's log (docs/protocol.md)."""
        return f"{self.server_name}/safehold/encounter/{self.encounter}"


@dataclass
class ChunkRecord:
    """One chunk present in the bundle, with what verification established about it."""

    stream: str
    seq: int
    age_file: str  # bundle-relative path
    final: bool | None = None
    size: int | None = None
    sha256: str | None = None
    device_time: str | None = None
    signed_by: str | None = None  # device id whose key signed the descriptor
    leaf_index: int | None = None
    tree_size: int | None = None
    received_at: str | None = None  # server time from the receipt (not signed)
    receipt_root: bytes | None = None  # root of the receipt's checkpoint, if it verified
    payload_offset: int | None = None  # where the age payload starts (after the header)
    plaintext_size: int | None = None  # computed from the age framing, no key needed
    sound: bool = False  # every check of this chunk passed: it may be decrypted

    def to_json(self) -> dict[str, Any]:
        # Every field is a plain value: no deep copy (asdict's) needed, one per chunk adds up.
        return {name: getattr(self, name) for name in _RECORD_FIELDS}


_RECORD_FIELDS = [f.name for f in fields(ChunkRecord) if f.name != "receipt_root"]


# Streams that never close by design: the event log's `addenda`, notes added after the recording
# stopped (docs/protocol.md C.3.1). No final chunk there is not a recording cut off.
OPEN_STREAMS = frozenset({"addenda"})


@dataclass
class StreamSummary:
    """What the log and the bundle say about one stream."""

    name: str
    seqs: list[int] = field(default_factory=list)  # seqs the server logged
    final_seq: int | None = None
    missing: list[int] = field(default_factory=list)  # never reached the server
    last_seq: int | None = None
    last_device_time: str | None = None
    last_received_at: str | None = None

    @property
    def cut_off(self) -> bool:
        return self.final_seq is None and self.name not in OPEN_STREAMS

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cut_off": self.cut_off, "closed": self.final_seq is not None,
                "open_by_design": self.name in OPEN_STREAMS}


def seq_ranges(seqs: list[int]) -> str:
    """'0-3, 5, 7-9' for [0, 1, 2, 3, 5, 7, 8, 9]: how people read lists of seqs."""
    parts: list[str] = []
    ordered = sorted(set(seqs))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)
