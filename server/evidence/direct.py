"""Direct uploads: the phone PUTs a chunk body straight to S3, then asks the API to commit it.

1. `presign`: the same checks as a proxied upload that need no body (the caller may write the
   encounter, the declared size is within the limit, the descriptor is signed by the calling
   device and names this slot) and then a presigned PUT pinned to the descriptor's length,
   SHA-256 and write-once (If-None-Match: *). Nothing is stored.
2. The phone PUTs the body to S3. Real S3 refuses other headers, another body or an existing
   key; an S3 that does not check presigned signatures or checksums (moto) takes anything, so:
3. `commit`: the API reads the stored object back and runs every body check of the proxied
   upload on it (length, SHA-256 against the signed descriptor, an age file whose slot stanza
   matches). Only then is the leaf appended in the same transaction as a proxied upload, and the
   receipt is identical in form. An object that fails a check and is not even an age file naming
   this slot (garbage, or larger than any chunk) is deleted, so it cannot block the honest body.
   One that does name this slot is never deleted: it may be another upload's honest chunk whose
   metadata is being committed at this moment (deleting it would lose acknowledged evidence);
   the commit is refused 409 chunk_exists, as a proxied PUT meeting other bytes is. A slot
   already holding a committed chunk is never touched (a replayed commit gets its receipt).
"""

from __future__ import annotations

import contextlib

from crypto.age import read_header, x25519_stanza_count
from crypto.descriptor import ChunkDescriptor
from crypto.errors import CryptoError
from server.blobs.s3 import PresignedPut, S3BlobStore
from server.blobs.store import (
    BlobMissing,
    BlobStoreUnavailable,
    DigestedBytes,
    chunk_key,
)
from server.context import Services
from server.errors import ApiError
from server.evidence.uploads import (
    admit,
    check_body,
    check_descriptor_matches,
    check_length,
    commit_stored,
    open_descriptor_header,
)
from server.identity.auth import Caller
from server.store.encounters import ChunkRecord
from server.trust.access import writable_encounter

PRESIGN_SECONDS = 900  # long enough for a slow uplink to send one chunk, short enough to leak


def direct_store(svc: Services) -> S3BlobStore:
    """The S3 store when direct uploads are on; else the refusal a phone falls back on."""
    if not svc.config.get("DIRECT_UPLOADS") or not isinstance(svc.blobs, S3BlobStore):
        raise ApiError(404, "direct_uploads_off", "This server does not take direct uploads; "
                       "PUT the chunk to the chunk URL instead.")
    return svc.blobs


def _unavailable(what: str) -> ApiError:
    return ApiError(503, "storage_unavailable", f"The blob store could not be reached to {what}; "
                    "nothing was acknowledged. Retry later.", headers={"Retry-After": "5"})


def _checked_descriptor(svc: Services, caller: Caller, slot_url: tuple[str, str, int],
                        descriptor_header: str) -> tuple[str, ChunkDescriptor]:
    with svc.store.read() as tx:
        writable_encounter(tx, caller, slot_url[0])
        device = tx.device(caller.device_id)
    assert device is not None  # tokens belong to registered devices
    note, desc = open_descriptor_header(descriptor_header, device.device_key)
    check_length(desc.size, svc.config["MAX_CHUNK_BYTES"])
    check_descriptor_matches(desc, slot_url, desc.size)
    return note, desc


def presign(svc: Services, caller: Caller, slot_url: tuple[str, str, int],
            descriptor_header: str) -> PresignedPut:
    store = direct_store(svc)
    _note, desc = _checked_descriptor(svc, caller, slot_url, descriptor_header)
    with svc.store.read() as tx:
        admit(tx, svc, desc)  # 409 for a slot holding other bytes or a closed stream
    try:
        return store.presign_put(chunk_key(*slot_url), desc.size, desc.sha256, PRESIGN_SECONDS)
    except BlobStoreUnavailable:
        raise _unavailable("sign an upload URL")


def commit(svc: Services, caller: Caller, slot_url: tuple[str, str, int],
           descriptor_header: str) -> tuple[ChunkRecord, bool]:
    """Confirm the object a presigned PUT stored and append its leaf; (record, created)."""
    store = direct_store(svc)
    note, desc = _checked_descriptor(svc, caller, slot_url, descriptor_header)
    with svc.store.read() as tx:
        held = admit(tx, svc, desc)
    if held is not None:  # a replayed commit: the first receipt; the object is not touched
        return held, False
    key = chunk_key(*slot_url)
    body = _stored_body(store, key, svc.config["MAX_CHUNK_BYTES"])
    try:
        check_body(body, desc)
    except ApiError:
        if _names_this_slot(body, slot_url):
            # Perhaps another upload's honest chunk whose metadata is being committed right
            # now: never deleted, and judged as the proxied PUT judges a different body.
            raise ApiError(409, "chunk_exists", "The object uploaded for this slot is another "
                           "chunk than the signed descriptor names; stored evidence is never "
                           "replaced.")
        _discard(store, key)
        raise
    return commit_stored(svc, caller, slot_url, desc, note)


def _names_this_slot(body: bytes, slot_url: tuple[str, str, int]) -> bool:
    """An age file with a recipient whose slot stanza names this encounter, stream and seq."""
    try:
        header = read_header(body)
    except CryptoError:
        return False
    slot = header.slot
    return x25519_stanza_count(header) > 0 and slot is not None \
        and (slot.encounter, slot.stream, slot.seq) == slot_url


def _stored_body(store: S3BlobStore, key: str, limit: int) -> DigestedBytes:
    try:
        stored_size = store.size(key)
        if stored_size > limit:  # no chunk is larger: not evidence, and not read into memory
            _discard(store, key)
            raise ApiError(400, "size_mismatch", f"The uploaded object holds {stored_size} "
                           f"bytes, more than any chunk may; it was discarded.")
        return DigestedBytes(store.get(key))
    except BlobMissing:
        raise ApiError(409, "upload_missing", "Nothing was uploaded to this chunk's presigned "
                       "URL (or it was discarded); upload the body, then commit again.")
    except BlobStoreUnavailable:
        raise _unavailable("confirm the upload")


def _discard(store: S3BlobStore, key: str) -> None:
    # If S3 is unreachable now, a later honest upload meets If-None-Match and the commit judges
    # the leftover by its digest again.
    with contextlib.suppress(BlobStoreUnavailable):
        store.delete(key)
