"""C2SP tlog-checkpoint: a log's size and root hash, signed as a note by the server key.

Body (c2sp.org/tlog-checkpoint):

    <origin>\\n
    <tree size, canonical decimal>\\n
    <b64 of the 32-byte RFC 6962 root hash>\\n
    [<extension line>\\n ...]          (non-empty, opaque; Safehold writes none)

A size and a root mean something only together: take both from one verified checkpoint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from crypto.errors import BadProof, MalformedError
from crypto.merkle import HASH_SIZE, MAX_TREE_SIZE, leaf_hash, verify_consistency, verify_inclusion
from crypto.signing import open_note, sign_note
from crypto.slot import check_encounter, parse_decimal

ENCOUNTER_LOG = "safehold/encounter"


def encounter_origin(server_name: str, encounter: str) -> str:
    """The origin line of an encounter's log: <server name>/safehold/encounter/<uuid>."""
    check_encounter(encounter)
    _check_line(server_name, "server name")
    return f"{server_name}/{ENCOUNTER_LOG}/{encounter}"


def _check_line(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedError(f"{what} must be a non-empty line")
    if any(ord(ch) < 0x20 for ch in value):
        raise MalformedError(f"{what} must not contain newlines or control characters")
    return value


def _root_from_b64(text: str) -> bytes:
    try:
        root = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise MalformedError("checkpoint root hash is not base64")
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != text:
        raise MalformedError("checkpoint root hash must be the canonical base64 of 32 bytes")
    return root


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement "the log `origin` has `size` leaves and root hash `root`"."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise MalformedError("checkpoint size must be an integer")
        if not 0 <= self.size < MAX_TREE_SIZE:
            raise MalformedError("checkpoint size must be in [0, 2**64)")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise MalformedError("checkpoint root must be 32 bytes")
        for line in self.extensions:
            _check_line(line, "checkpoint extension line")

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "".join(line + "\n" for line in [*lines, *self.extensions])

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly (extension lines are kept, not interpreted)."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise MalformedError("a checkpoint is text ending in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedError("a checkpoint has an origin, a size and a root hash line")
        origin, size_text, root_text, *extensions = lines
        size = parse_decimal(size_text, "checkpoint size")
        return cls(origin, size, _root_from_b64(root_text), tuple(extensions))


def sign_checkpoint(cp: Checkpoint, server_signing_key: str) -> str:
    """The checkpoint as a signed note."""
    return sign_note(cp.text(), server_signing_key)


def open_checkpoint(
    note: str, server_verifier: str, *, expected_origin: str | None = None
) -> Checkpoint:
    """Verify the server's signature and parse; BadSignature/MalformedError.

    With `expected_origin`, a checkpoint of any other log raises BadProof.
    """
    cp = Checkpoint.parse(open_note(note, [server_verifier]))
    if expected_origin is not None and cp.origin != expected_origin:
        raise BadProof(f"checkpoint is for log {cp.origin!r}, not {expected_origin!r}")
    return cp


def verify_leaf_in_checkpoint(
    cp: Checkpoint, leaf_data: bytes, index: int, proof: Sequence[bytes]
) -> None:
    """BadProof unless `leaf_data` is leaf `index` of the tree the checkpoint signs."""
    verify_inclusion(leaf_hash(leaf_data), index, cp.size, proof, cp.root)


def verify_checkpoints_consistent(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """BadProof unless `new` extends `old` (same log, nothing dropped or reordered)."""
    if old.origin != new.origin:
        raise BadProof("checkpoints of different logs cannot be consistent")
    verify_consistency(old.size, new.size, old.root, new.root, proof)
