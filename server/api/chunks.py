"""Chunk upload (raw age bytes) and the chunk's bytes, descriptor and receipt."""

from __future__ import annotations

import base64
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.chunks import (
    DESCRIPTOR_HEADER,
    ChunkHeadersSchema,
    ReceiptSchema,
    ReceiptWithDescriptorSchema,
)
from server.api.common import caller, device_endpoint, reader_endpoint, refusals
from server.blobs.store import BlobMissing
from server.context import services
from server.errors import ApiError, not_found
from server.evidence.chunk_reads import chunk_response
from server.evidence.uploads import upload_chunk
from server.store.encounters import ChunkRecord
from server.tlog import witnesses
from server.tlog.witnesses import cosigned_note
from server.trust.access import readable_encounter

blp = Blueprint("chunks", __name__, url_prefix="/v1", description="Chunks and receipts")

CHUNK_PATH = "/encounters/<uuid_lower:encounter_id>/streams/<stream:stream>/chunks/<int(max=4294967295):seq>"  # noqa: E501
# One instance, not the class: webargs would build (and deep-copy the fields of) a new one for
# every upload.
CHUNK_HEADERS = ChunkHeadersSchema()
BINARY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_BODY = {
    "required": True,
    "description": "the chunk: one complete age v1 file (send Content-Length)",
    "content": {"application/octet-stream": BINARY},
}


def receipt_body(record: ChunkRecord) -> dict[str, Any]:
    return {
        "encounter_id": record.encounter_id, "stream": record.stream, "seq": record.seq,
        "leaf_index": record.leaf_index, "tree_size": record.tree_size,
        "checkpoint": _with_cosignatures(record), "inclusion_proof": record.inclusion_proof,
        "received_at": record.received_at,
    }


def _with_cosignatures(record: ChunkRecord) -> str:
    """The receipt's checkpoint with the witnesses' cosignatures collected for it so far
    (an upload never waits for them; a later read of the receipt carries them)."""
    svc = services()
    if not svc.config.get("WITNESSES"):
        return record.checkpoint
    with svc.store.read() as tx:
        stored = tx.checkpoint(record.encounter_id, record.tree_size)
    if stored is None or stored.note != record.checkpoint:
        return record.checkpoint
    return cosigned_note(svc, record.encounter_id, stored)


def read_exactly(length: int) -> bytes:
    """Up to `length` body bytes; fewer only if the client stopped sending."""
    parts: list[bytes] = []
    remaining = length
    while remaining > 0:
        part = request.stream.read(min(remaining, 1024 * 1024))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def stored_chunk(encounter_id: str, stream: str, seq: int) -> ChunkRecord:
    with services().store.read() as tx:
        readable_encounter(tx, caller(), encounter_id)
        record = tx.chunk(encounter_id, stream, seq)
    if record is None:
        raise not_found(f"No chunk {stream}/{seq} is stored for this encounter.")
    return record


@blp.route(CHUNK_PATH)
class Chunk(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 400, 404, 409, 411, 413, 503)
    @blp.arguments(CHUNK_HEADERS, location="headers")
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(201, ReceiptSchema, description="stored now; the receipt")
    @blp.alt_response(200, schema=ReceiptSchema, description="already stored; the same receipt")
    def put(self, headers: dict[str, Any], encounter_id: str, stream: str,
            seq: int) -> tuple[dict[str, Any], int]:
        """Upload one chunk (age file) with its signed descriptor; answers with the receipt."""
        svc = services()
        record, created = upload_chunk(
            svc, caller(), (encounter_id, stream, seq), headers["descriptor"],
            request.content_length, read_exactly,
        )
        if created:  # witnesses see the log grow without waiting for a reader (background)
            witnesses.collect_soon(svc, encounter_id)
        return receipt_body(record), 201 if created else 200

    @reader_endpoint(blp)
    @refusals(blp, 404, 416)
    @blp.response(200, {"type": "string", "format": "binary"},
                  content_type="application/octet-stream",
                  description="the age file; Safehold-Descriptor header: b64 descriptor note",
                  headers={DESCRIPTOR_HEADER: {"schema": {"type": "string"}},
                           "ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(206, schema={"type": "string", "format": "binary"},
                      content_type="application/octet-stream", description="the requested range")
    def get(self, encounter_id: str, stream: str, seq: int) -> Response:
        """The chunk's bytes (HTTP Range supported), with its descriptor in a header."""
        record = stored_chunk(encounter_id, stream, seq)
        try:
            response = chunk_response(services().blobs, record)
        except BlobMissing:
            raise ApiError(500, "internal_error", "The chunk's bytes are missing from storage.")
        response.headers[DESCRIPTOR_HEADER] = base64.b64encode(
            record.descriptor.encode("utf-8")).decode("ascii")
        return response


@blp.route(CHUNK_PATH + "/receipt")
class ChunkReceipt(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, ReceiptWithDescriptorSchema)
    def get(self, encounter_id: str, stream: str, seq: int) -> dict[str, Any]:
        """The chunk's receipt (as given at upload) and its signed descriptor."""
        record = stored_chunk(encounter_id, stream, seq)
        return {**receipt_body(record), "descriptor": record.descriptor}
