"""Taking one chunk: every check before anything is stored, then blob, then one transaction.

Order (each refusal leaves nothing behind):
  1. the caller's account owns the encounter (else 404, as if it did not exist);
  2. Content-Length present (411) and within the limit (413), before a byte is read;
  3. the descriptor header decodes and parses (bad_descriptor), is signed by the calling
     device (bad_signature), and names this URL's slot (descriptor_mismatch) and this length
     (size_mismatch);
  4. the body: exactly Content-Length bytes (size_mismatch), hashing to the descriptor's
     SHA-256 (digest_mismatch), an age file with an X25519 stanza (not_age) whose slot stanza
     matches (slot_mismatch);
  5. the slot and stream allow it: same bytes already stored -> the original receipt; other
     bytes -> chunk_exists; beyond/second final -> stream_closed; too_many_streams.
Then the blob is stored durably (idempotent for identical bytes, so a retry after a crash here
re-uses it), and one BEGIN IMMEDIATE transaction re-checks 5, appends the leaf, signs the
checkpoint, records the chunk with its receipt and the change row. Only when that transaction
is committed is the chunk acknowledged (concurrent uploads share the transaction and its
COMMIT, each in its own savepoint: server/store/group_commit.py).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable

from crypto.age import read_header, x25519_stanza_count
from crypto.descriptor import ChunkDescriptor, verify_descriptor
from crypto.errors import BadSignature, CryptoError
from crypto.merkle import leaf_hash
from server.blobs.store import BlobConflict, BlobStoreUnavailable, DigestedBytes, chunk_key
from server.context import Services
from server.errors import ApiError
from server.evidence.encounters import signed_checkpoint
from server.identity.auth import Caller, iso
from server.ops.metrics import FSYNC_SECONDS
from server.store.encounters import ChunkRecord
from server.store.metadata import Tx
from server.trust.access import writable_encounter

ReadBody = Callable[[int], bytes]


def _refuse(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message)


def check_length(content_length: int | None, limit: int) -> int:
    if content_length is None:
        raise _refuse(411, "length_required", "Send the chunk with a Content-Length header.")
    if content_length > limit:
        raise _refuse(413, "too_large", f"A chunk may be at most {limit} bytes; this one "
                      f"declares {content_length}.")
    return content_length


def open_descriptor_header(header: str, device_key: str) -> tuple[str, ChunkDescriptor]:
    try:
        note = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _refuse(400, "bad_descriptor", "Safehold-Descriptor is not base64 of UTF-8 text.")
    try:
        return note, verify_descriptor(note, device_key)
    except BadSignature:
        raise _refuse(400, "bad_signature",
                      "The descriptor is not signed by the key of the device uploading it.")
    except CryptoError as exc:
        raise _refuse(400, "bad_descriptor", f"The descriptor is not well-formed: {exc}")


def check_descriptor_matches(desc: ChunkDescriptor, slot_url: tuple[str, str, int],
                             length: int) -> None:
    if (desc.encounter, desc.stream, desc.seq) != slot_url:
        raise _refuse(400, "descriptor_mismatch", "The descriptor names encounter "
                      f"{desc.encounter}, stream {desc.stream}, seq {desc.seq}; the URL does not.")
    if desc.size != length:
        raise _refuse(400, "size_mismatch", f"The descriptor says {desc.size} bytes; "
                      f"Content-Length says {length}.")


def check_body(body: DigestedBytes, desc: ChunkDescriptor) -> None:
    if len(body) != desc.size:
        raise _refuse(400, "size_mismatch", f"Received {len(body)} bytes, not {desc.size}.")
    if body.sha256_hex != desc.sha256:
        raise _refuse(400, "digest_mismatch",
                      "The body's SHA-256 is not the one in the signed descriptor.")
    try:
        header = read_header(body)
    except CryptoError:
        raise _refuse(400, "not_age", "The body is not an age v1 file; chunks must be "
                      "encrypted before upload.")
    if x25519_stanza_count(header) == 0:
        raise _refuse(400, "not_age", "The age file has no X25519 recipient stanza; only "
                      "files sealed to contacts' and recovery keys are accepted.")
    if header.slot != desc.slot:
        raise _refuse(400, "slot_mismatch", "The age file's safehold-slot stanza does not match "
                      f"this chunk's place ({desc.stream}/{desc.seq}, "
                      f"{'final' if desc.final else 'more'}).")


def admit(tx: Tx, svc: Services, desc: ChunkDescriptor) -> ChunkRecord | None:
    """The stored chunk if this very chunk is already held; None if it may be added; else 409."""
    stored = tx.chunk(desc.encounter, desc.stream, desc.seq)
    if stored is not None:
        if stored.sha256 == desc.sha256:
            return stored
        raise _refuse(409, "chunk_exists", "A different chunk is already stored in this slot; "
                      "stored evidence is never replaced.")
    highest, final_seq = tx.stream_summary(desc.encounter, desc.stream)
    if final_seq is not None and (desc.seq > final_seq or desc.final):
        raise _refuse(409, "stream_closed", f"Stream {desc.stream} ended with its final chunk "
                      f"at seq {final_seq}.")
    if desc.final and highest is not None and highest > desc.seq:
        raise _refuse(409, "stream_closed", f"Stream {desc.stream} already holds seq {highest}, "
                      f"after this final chunk.")
    if highest is None and tx.stream_count(desc.encounter) >= svc.config["MAX_STREAMS"]:
        raise _refuse(409, "too_many_streams", "This encounter already has "
                      f"{svc.config['MAX_STREAMS']} streams.")
    return None


def upload_chunk(svc: Services, caller: Caller, slot_url: tuple[str, str, int],
                 descriptor_header: str, content_length: int | None,
                 read_body: ReadBody) -> tuple[ChunkRecord, bool]:
    """Store one chunk; (record with its receipt, True if stored now / False if held before)."""
    with svc.store.read() as tx:
        writable_encounter(tx, caller, slot_url[0])
        device = tx.device(caller.device_id)
    assert device is not None  # tokens belong to registered devices
    length = check_length(content_length, svc.config["MAX_CHUNK_BYTES"])
    note, desc = open_descriptor_header(descriptor_header, device.device_key)
    check_descriptor_matches(desc, slot_url, length)
    body = DigestedBytes(read_body(length))  # hashed once, here; the blob store re-uses it
    check_body(body, desc)
    with svc.store.read() as tx:
        held = admit(tx, svc, desc)
    if held is not None:
        return held, False
    with FSYNC_SECONDS.labels("blob").time():  # write, fsync file and folder
        _store_blob(svc, desc, body)
    return commit_stored(svc, caller, slot_url, desc, note)


def commit_stored(svc: Services, caller: Caller, slot_url: tuple[str, str, int],
                  desc: ChunkDescriptor, note: str) -> tuple[ChunkRecord, bool]:
    """Append a chunk whose checked bytes are durable in the blob store; (record, created)."""

    def record_chunk(tx: Tx) -> tuple[ChunkRecord, bool]:
        tx.lock_log(desc.encounter)  # admit and append as one step, whichever node runs them
        writable_encounter(tx, caller, slot_url[0])  # again: a deletion may have begun since
        held = admit(tx, svc, desc)
        if held is not None:
            return held, False
        return _append(tx, svc, caller, desc, note), True

    # Shared with concurrent uploads' transactions; returns once committed (durable).
    with FSYNC_SECONDS.labels("commit").time():  # includes waiting for the shared COMMIT
        return svc.store.write_grouped(record_chunk)


def _store_blob(svc: Services, desc: ChunkDescriptor, body: bytes) -> None:
    try:
        svc.blobs.put(chunk_key(desc.encounter, desc.stream, desc.seq), body, desc.sha256)
    except BlobConflict:
        # Other bytes reached the store for this slot (a concurrent upload, or an attempt that
        # crashed before its metadata): they are never overwritten.
        raise _refuse(409, "chunk_exists", "A different chunk is already stored in this slot; "
                      "stored evidence is never replaced.")
    except BlobStoreUnavailable:
        raise ApiError(503, "storage_unavailable", "The chunk could not be stored right now; "
                       "nothing was acknowledged. Retry later.", headers={"Retry-After": "5"})


def _append(tx: Tx, svc: Services, caller: Caller, desc: ChunkDescriptor,
            note: str) -> ChunkRecord:
    now = iso(time.time())
    leaf = note.encode("utf-8")
    leaf_digest = leaf_hash(leaf)
    frontier, proof = tx.frontier(desc.encounter).append(leaf_digest)
    checkpoint = signed_checkpoint(svc, desc.encounter, frontier.size, frontier.root())
    tx.append_leaf(desc.encounter, leaf_digest, leaf, frontier)
    tx.insert_checkpoint(desc.encounter, checkpoint, now)
    record = ChunkRecord(
        encounter_id=desc.encounter, stream=desc.stream, seq=desc.seq, final=desc.final,
        size=desc.size, sha256=desc.sha256, descriptor=note, device_id=caller.device_id,
        blob_key=chunk_key(desc.encounter, desc.stream, desc.seq),
        leaf_index=frontier.size - 1, tree_size=frontier.size, checkpoint=checkpoint.note,
        inclusion_proof=[base64.b64encode(h).decode("ascii") for h in proof], received_at=now,
    )
    tx.insert_chunk(record)
    tx.insert_change(caller.account_id, "chunk_stored", now, desc.encounter, desc.stream, desc.seq)
    return record
