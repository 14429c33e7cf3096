"""The checks of one chunk in a bundle: descriptor, age file, slot, receipt and proof.

Chunks are independent, so `check_chunk` runs in many worker processes at once. It reads the
age file once, in blocks, whatever its size; a `tap` sees every block as it is read, so
`decrypt` opens the chunk in the same pass instead of reading it a second time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from crypto.age import Header, read_header
from crypto.checkpoint import Checkpoint, open_checkpoint
from crypto.descriptor import ChunkDescriptor, check_time, open_descriptor
from crypto.errors import BadProof, BadSignature, CryptoError, MalformedError
from crypto.merkle import leaf_hash, verify_inclusion
from sync.bundle.files import (
    AGE_SUFFIX,
    DESCRIPTOR_SUFFIX,
    READ_BLOCK,
    RECEIPT_SUFFIX,
    BundleReader,
    ChunkEntry,
)
from sync.verifying.findings import ERROR, WARNING, ChunkRecord, Problem, Trust
from sync.verifying.roster import forged_message
from sync.verifying.shares import GRANT_SUFFIX, open_share

HEAD_BYTES = 64 * 1024  # an age header with a handful of stanzas is well under 1 KiB
AGE_TAG = 16
AGE_NONCE = 16
AGE_CHUNK = 64 * 1024


def plaintext_size(file_size: int, payload_offset: int) -> int | None:
    """The plaintext length of an age file, from its sizes alone (age STREAM framing)."""
    sealed = file_size - payload_offset - AGE_NONCE
    if sealed < AGE_TAG:
        return None
    chunks = -(-sealed // (AGE_CHUNK + AGE_TAG))
    size = sealed - chunks * AGE_TAG
    # Only the last STREAM chunk may be short, and only the first (empty file) may be empty.
    return size if size >= 0 and (size > 0 or chunks == 1) else None


class Tap(Protocol):
    """Sees every block of a chunk's age file as it is read, in order (never raises)."""

    def feed(self, block: bytes) -> None: ...

    def header(self) -> Header | None:
        """The age header, if the tap has parsed it (and verified its MAC) by now."""


def open_device_descriptor(note: str, devices: Mapping[str, str]) -> tuple[ChunkDescriptor, str]:
    """The descriptor and the id of the device whose key signed it; BadSignature/MalformedError."""
    if not devices:
        raise BadSignature("manifest.json lists no device key")
    desc, signers = open_descriptor(note, list(devices.values()))
    device_of = {key: device_id for device_id, key in devices.items()}
    return desc, device_of[signers[0]]


class CheckpointCache:
    """Receipts of one log share few checkpoints; open each note once. Thread-safe."""

    def __init__(self, server_key: str | None) -> None:
        self._key = server_key
        self._lock = threading.Lock()
        self._seen: dict[str, Checkpoint | CryptoError] = {}

    def open(self, note: str) -> Checkpoint:
        with self._lock:
            cached = self._seen.get(note)
        if cached is None:
            try:
                if self._key is None:
                    raise BadSignature("manifest.json has no usable server key")
                cached = open_checkpoint(note, self._key)
            except CryptoError as exc:
                cached = exc
            with self._lock:
                self._seen[note] = cached
        if isinstance(cached, CryptoError):
            raise cached
        return cached


@dataclass
class ChunkContext:
    """What every chunk check needs; one per worker process."""

    reader: BundleReader
    trust: Trust
    checkpoints: CheckpointCache


@dataclass
class ChunkOutcome:
    """The result of checking one chunk: small and picklable (it crosses process borders)."""

    record: ChunkRecord
    problems: list[Problem] = field(default_factory=list)
    digests: dict[str, tuple[str, int]] = field(default_factory=dict)  # file -> sha256, size
    note: bytes | None = None  # the descriptor file, if its signature verified
    descriptor: ChunkDescriptor | None = None

    def settle(self, log_index: dict[bytes, int] | None) -> None:
        """Check against the log (known only to the parent) and decide whether it is sound."""
        if log_index is not None and self.note is not None:
            self._check_log_membership(log_index)
        self.record.sound = not any(p.severity == ERROR for p in self.problems)

    def _check_log_membership(self, log_index: dict[bytes, int]) -> None:
        rec = self.record
        assert self.note is not None
        index = log_index.get(self.note)
        descriptor_file = rec.age_file.removesuffix(AGE_SUFFIX) + DESCRIPTOR_SUFFIX
        if index is None:
            self.problems.append(Problem(
                ERROR, "not_in_log", f"{descriptor_file}: is not a leaf of this encounter's log "
                "(log/leaves.jsonl): the server never witnessed this chunk", descriptor_file,
                rec.stream, rec.seq))
        elif rec.leaf_index is not None and rec.leaf_index != index:
            receipt_file = rec.age_file.removesuffix(AGE_SUFFIX) + RECEIPT_SUFFIX
            self.problems.append(Problem(
                ERROR, "inclusion_proof", f"{receipt_file}: says leaf {rec.leaf_index}, but the "
                f"log holds this descriptor at leaf {index}", receipt_file, rec.stream, rec.seq))


class _ChunkCheck:
    def __init__(self, ctx: ChunkContext, entry: ChunkEntry, tap: Tap | None) -> None:
        self.ctx = ctx
        self.entry = entry
        self.tap = tap
        self.where = f"{entry.stream} seq {entry.seq}"
        self.out = ChunkOutcome(ChunkRecord(entry.stream, entry.seq, entry.age))

    def problem(self, severity: str, check: str, file: str, message: str) -> None:
        self.out.problems.append(
            Problem(severity, check, f"{file}: {message}", file, self.entry.stream, self.entry.seq)
        )

    def error(self, check: str, file: str, message: str) -> None:
        self.problem(ERROR, check, file, message)

    def read_small(self, name: str) -> bytes:
        data = self.ctx.reader.read_bytes(name)
        self.out.digests[name] = (hashlib.sha256(data).hexdigest(), len(data))
        return data

    def run(self) -> ChunkOutcome:
        files = self.entry.files
        for suffix in (DESCRIPTOR_SUFFIX, AGE_SUFFIX):
            if suffix not in files:
                name = self.entry.descriptor if suffix == DESCRIPTOR_SUFFIX else self.entry.age
                self.error("missing_file", name, f"is missing, so {self.where} cannot be checked")
        note = self.read_small(self.entry.descriptor) if DESCRIPTOR_SUFFIX in files else None
        desc = self.check_descriptor(note) if note is not None else None
        if AGE_SUFFIX in files:
            self.check_age(desc)
        if note is not None and desc is not None:
            self.out.note, self.out.descriptor = note, desc
            if RECEIPT_SUFFIX in files:
                self.check_receipt(note)
            else:
                self.problem(WARNING, "missing_receipt", self.entry.receipt,
                             "is missing; the log still proves the chunk was received")
        return self.out

    def check_descriptor(self, data: bytes) -> ChunkDescriptor | None:
        name = self.entry.descriptor
        try:
            desc, device_id = open_device_descriptor(data.decode("utf-8"),
                                                     self.ctx.trust.devices)
        except UnicodeDecodeError:
            self.error("descriptor_malformed", name, "is not UTF-8 text (altered)")
            return None
        except BadSignature as exc:
            self.error("descriptor_signature", name, forged_message(
                data.decode("utf-8"), self.ctx.trust.devices, exc))
            return None
        except MalformedError as exc:
            self.error("descriptor_malformed", name, f"is not a valid signed descriptor ({exc})")
            return None
        rec = self.out.record
        rec.final, rec.size, rec.sha256 = desc.final, desc.size, desc.sha256
        rec.device_time, rec.signed_by = desc.device_time, device_id
        if desc.encounter != self.ctx.trust.encounter:
            self.error("foreign_chunk", name, f"describes a chunk of another encounter "
                       f"({desc.encounter}), not of {self.ctx.trust.encounter}")
        elif (desc.stream, desc.seq) != (self.entry.stream, self.entry.seq):
            self.error("misplaced", name, f"describes {desc.stream} seq {desc.seq}, but it is "
                       f"stored as {self.where}")
        return desc

    def check_age(self, desc: ChunkDescriptor | None) -> None:
        name = self.entry.age
        hasher, signed = hashlib.sha256(), hashlib.sha256()  # the file; the bytes signed for
        tap = self.tap
        share = open_share(self, desc) if GRANT_SUFFIX in self.entry.files else None
        with self.ctx.reader.open(name) as stream:
            # One read holds a whole chunk of usual size, header and all.
            head = stream.read(READ_BLOCK)
            hasher.update(head)
            cut = share.rewrapped(self, head) if share is not None else 0
            signed.update(share.original_header if share is not None else b"")
            signed.update(head[cut:])
            if tap is not None:
                tap.feed(head)
            size = len(head)
            while block := stream.read(READ_BLOCK):
                hasher.update(block)
                signed.update(block)
                if tap is not None:
                    tap.feed(block)
                size += len(block)
        self.out.digests[name] = (hasher.hexdigest(), size)
        if share is not None:  # the original: its header, then the payload served to her
            size += len(share.original_header) - cut
        digest = signed.hexdigest()
        if desc is not None and (size != desc.size or digest != desc.sha256):
            what = " (original header + this payload)" if share is not None else ""
            self.error("chunk_digest", name, f"was altered: it has{what} {size} bytes with "
                       f"SHA-256 {digest}, but its signed descriptor says {desc.size} bytes "
                       f"with SHA-256 {desc.sha256}")
        self.check_slot(head, desc)

    def check_slot(self, head: bytes, desc: ChunkDescriptor | None) -> None:
        name = self.entry.age
        try:
            # A decrypting tap has parsed the same header already; else parse it here.
            header = (self.tap.header() if self.tap is not None else None) or \
                read_header(head[:HEAD_BYTES])
            slot, offset = header.slot, header.payload_offset
        except CryptoError as exc:
            self.error("not_age", name, f"is not a readable age file ({exc})")
            return
        size = self.out.digests[name][1]
        self.out.record.plaintext_size = plaintext_size(size, offset)
        self.out.record.payload_offset = offset
        trust = self.ctx.trust
        if slot is None:
            self.error("slot", name, "has no safehold-slot stanza, so its place is unproven")
        elif slot.encounter != trust.encounter:
            self.error("foreign_chunk", name, f"belongs to another encounter: its slot stanza "
                       f"says {slot.stream} seq {slot.seq} of {slot.encounter}")
        elif (slot.stream, slot.seq) != (self.entry.stream, self.entry.seq):
            self.error("misplaced", name, f"misplaced: its slot stanza says {slot.stream} "
                       f"seq {slot.seq}, but it is stored as {self.where}")
        elif desc is not None and slot.final != desc.final:
            self.error("slot", name, f"its slot stanza says final={slot.final} but its "
                       f"descriptor says final={desc.final}")

    def check_receipt(self, note: bytes) -> None:
        name = self.entry.receipt
        try:
            receipt = json.loads(self.read_small(name).decode("utf-8"))
            index, size, proof, cp_note = _receipt_fields(receipt)
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            self.error("receipt_malformed", name, f"is not a valid receipt ({exc})")
            return
        rec = self.out.record
        rec.leaf_index, rec.tree_size = index, size
        rec.received_at = self.received_at(receipt.get("received_at"))
        try:
            checkpoint = self.ctx.checkpoints.open(cp_note)
        except CryptoError as exc:
            self.error("receipt_checkpoint", name, f"its checkpoint is not signed by the "
                       f"server key in manifest.json ({exc})")
            return
        self.check_receipt_checkpoint(checkpoint, index, size, proof, note)

    def received_at(self, value: object) -> str | None:
        """The server's (unsigned) receipt time, only if it is a time: it reaches the report."""
        if value is None:
            return None
        try:
            return check_time(value)
        except MalformedError:
            self.problem(WARNING, "receipt_time", self.entry.receipt, "its received_at is not "
                         "an RFC 3339 time; it is left out")
            return None

    def check_receipt_checkpoint(self, checkpoint: Checkpoint, index: int, size: int,
                                 proof: list[bytes], note: bytes) -> None:
        name = self.entry.receipt
        if checkpoint.origin != self.ctx.trust.origin:
            self.error("receipt_checkpoint", name, f"its checkpoint is for another log "
                       f"({checkpoint.origin!r}), not {self.ctx.trust.origin!r}")
            return
        if checkpoint.size != size:
            self.error("receipt_checkpoint", name, f"says tree size {size} but its checkpoint "
                       f"has size {checkpoint.size}")
            return
        try:
            verify_inclusion(leaf_hash(note), index, size, proof, checkpoint.root)
        except BadProof as exc:
            self.error("inclusion_proof", name, f"the inclusion proof does not place "
                       f"{self.entry.descriptor} at leaf {index} of the server's log of size "
                       f"{size} ({exc})")
            return
        self.out.record.receipt_root = checkpoint.root


def _receipt_fields(receipt: object) -> tuple[int, int, list[bytes], str]:
    """leaf_index, tree_size, inclusion proof hashes and checkpoint note of a receipt."""
    if not isinstance(receipt, dict):
        raise TypeError("a receipt is a JSON object")
    index, size, note = receipt["leaf_index"], receipt["tree_size"], receipt["checkpoint"]
    hashes = receipt["inclusion_proof"]
    if not (isinstance(index, int) and isinstance(size, int) and isinstance(note, str)
            and isinstance(hashes, list) and all(isinstance(h, str) for h in hashes)):
        raise TypeError("leaf_index, tree_size, checkpoint or inclusion_proof has the wrong type")
    try:
        proof = [base64.b64decode(h, validate=True) for h in hashes]
    except binascii.Error as exc:
        raise ValueError(f"inclusion proof is not base64: {exc}")
    return index, size, proof, note


def check_chunk(ctx: ChunkContext, entry: ChunkEntry, tap: Tap | None = None) -> ChunkOutcome:
    """Every check of one chunk; never raises for bad content (it becomes a Problem).

    `tap`, if given, is fed the age file's bytes as they are read (and must not raise)."""
    return _ChunkCheck(ctx, entry, tap).run()
