"""C2SP tlog-cosignature (Ed25519, cosignature/v1) and the tlog-witness add-checkpoint body.

A cosignature is one more signature line on a checkpoint note (c2sp.org/tlog-cosignature):

    — <cosigner name> base64(key id || u64 big-endian timestamp || Ed25519 signature)

    key id  = SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]
    message = "cosignature/v1\\n" || "time <timestamp>\\n" || <checkpoint body>

The body is the whole checkpoint text (origin, size, root and any extension lines) without
signature lines. The message does not name the cosigner, so one key serves exactly one cosigner.

A cosigner's verifier key (vkey) is `<name>+<key id hex>+base64(0x04 || public key)`. The secret
key is an ordinary signed-note signing key (type 0x01), as Go's transparency-dev/formats takes
it: the cosignature key id is derived from its public key with the 0x04 byte.

add-checkpoint (c2sp.org/tlog-witness) request body:

    old <size>\\n
    <base64 consistency proof hash>\\n   (0 to 63 lines; none when old size is 0)
    \\n
    <signed checkpoint note>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from crypto.errors import BadSignature, MalformedError
from crypto.merkle import HASH_SIZE
from crypto.signing import (
    SIGNATURE_PREFIX,
    _b64decode_canonical,
    _check_note_text,
    _parse_signing_key,
    _raw_public,
    _split_key_any,
    _verify_ed25519,
    is_valid_key_name,
    split_note,
)
from crypto.slot import parse_decimal

COSIGNATURE_TYPE = b"\x04"
HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1
MAX_PROOF_LINES = 63
SIGNATURE_BYTES = 8 + 64  # timestamp || Ed25519 signature


@dataclass(frozen=True)
class Cosigner:
    """A witness's public identity: name, cosignature key id and Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @property
    def vkey(self) -> str:
        material = base64.b64encode(COSIGNATURE_TYPE + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: who made it and when (POSIX seconds, the cosigner's clock)."""

    cosigner: Cosigner
    timestamp: int


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || "\\n" || 0x04 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + COSIGNATURE_TYPE + public_key).digest()[:4]


def cosigner_of_signing_key(signing_key: str) -> Cosigner:
    """The public cosigner identity of an Ed25519 signing key (PRIVATE+KEY+…)."""
    name, _, private = _parse_signing_key(signing_key)
    public_key = _raw_public(private)
    return Cosigner(name, cosigner_key_id(name, public_key), public_key)


def parse_cosigner_vkey(vkey: str) -> Cosigner:
    """Parse `<name>+<key id>+base64(0x04 || key)`; MalformedError if anything is off."""
    if not isinstance(vkey, str):
        raise MalformedError("witness key must be a string")
    name, kid, material = _split_key_any(vkey, "witness key")
    if len(material) != 33 or material[:1] != COSIGNATURE_TYPE:
        raise MalformedError("witness key is not an Ed25519 cosignature (type 0x04) key")
    public_key = material[1:]
    if not hmac.compare_digest(kid, cosigner_key_id(name, public_key)):
        raise MalformedError("witness key id does not match its name and public key")
    return Cosigner(name, kid, public_key)


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a cosigner signs for `checkpoint_text` at `timestamp`."""
    _check_note_text(checkpoint_text)
    _check_timestamp(timestamp)
    return f"{HEADER}time {timestamp}\n{checkpoint_text}".encode()


def _check_timestamp(timestamp: int) -> None:
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise MalformedError("cosignature timestamp must be an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedError("cosignature timestamp must be in [0, 2**63 - 1]")


def cosign(checkpoint_text: str, signing_key: str, timestamp: int) -> str:
    """One cosignature line (ending in "\\n") over a checkpoint body."""
    name, _, private = _parse_signing_key(signing_key)
    kid = cosigner_key_id(name, _raw_public(private))
    signature = private.sign(signed_message(checkpoint_text, timestamp))
    blob = kid + struct.pack(">Q", timestamp) + signature
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


def cosignature_timestamp(signature: bytes) -> int:
    """The timestamp inside a cosignature's signature bytes (after the key id)."""
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedError("an Ed25519 cosignature is 8 + 64 bytes")
    (timestamp,) = struct.unpack(">Q", signature[:8])
    _check_timestamp(timestamp)
    return int(timestamp)


def verify_cosignatures(
    note: str, witness_vkeys: Sequence[str]
) -> tuple[list[Cosignature], list[str]]:
    """The valid cosignatures on a signed checkpoint note by the given witnesses, and problems.

    Lines from unknown keys are ignored (as the spec asks). A line by a known witness that
    does not verify is not counted and is named in the problems; one witness counts once.
    """
    if isinstance(witness_vkeys, str):
        raise MalformedError("witness keys must be a sequence, not one string")
    table = {(c.name, c.key_id): c for c in map(parse_cosigner_vkey, witness_vkeys)}
    text, signatures = split_note(note)
    valid: dict[bytes, Cosignature] = {}
    problems: list[str] = []
    for sig in signatures:
        cosigner = table.get((sig.name, sig.key_id))
        if cosigner is None:
            continue
        try:
            timestamp = cosignature_timestamp(sig.signature)
            _verify_ed25519(cosigner.public_key, signed_message(text, timestamp),
                            sig.signature[8:])
        except (BadSignature, MalformedError) as exc:
            problems.append(f"cosignature by {cosigner.name} does not verify ({exc})")
            continue
        valid.setdefault(cosigner.public_key, Cosignature(cosigner, timestamp))
    return list(valid.values()), problems


def add_signature_lines(note: str, lines: Sequence[str]) -> str:
    """`note` with extra signature lines appended (each once; malformed lines refused)."""
    split_note(note)  # the note itself must be well-formed
    existing = set(note[note.rfind("\n\n") + 2 :].splitlines(keepends=True))
    out = note
    for line in lines:
        if not isinstance(line, str) or not line.endswith("\n") or "\n" in line[:-1]:
            raise MalformedError("a signature line is one line ending in a newline")
        split_note("x\n\n" + line)  # parses as a signature line, else MalformedError
        if line not in existing:
            existing.add(line)
            out += line
    return out


# ---------------------------------------------------------------- tlog-witness request body


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint request body."""
    if len(proof) > MAX_PROOF_LINES:
        raise MalformedError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    lines = [f"old {old_size}\n"] + [base64.b64encode(h).decode("ascii") + "\n" for h in proof]
    return ("".join(lines) + "\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], str]:
    """Old size, consistency proof and the signed checkpoint note of a request body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("request body is not UTF-8")
    head, sep, note = text.partition("\n\n")
    if not sep or not head.startswith("old "):
        raise MalformedError("request body must start with 'old <size>' and a blank line")
    first, *proof_lines = head.split("\n")
    old_size = parse_decimal(first[len("old "):], "old size")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise MalformedError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = [_b64decode_canonical(line, "consistency proof line") for line in proof_lines]
    if any(len(h) != HASH_SIZE for h in proof):
        raise MalformedError("each consistency proof line is one 32-byte hash")
    return old_size, proof, note


def check_cosigner_name(name: str) -> str:
    if not is_valid_key_name(name):
        raise MalformedError(f"invalid witness name {name!r}: no spaces, '+' or control chars")
    return name
