"""Batch reads for fetching a whole encounter in few requests (docs/protocol.md, batch reads).

- `GET /v1/encounters/{id}/streams/{stream}/receipts`: the receipts (with signed descriptors)
  of many chunks of a stream, paged in seq order — what `GET .../chunks/{seq}/receipt` answers
  for one.
- `GET /v1/encounters/{id}/streams/{stream}/pack?start=&end=`: the bytes of seqs [start, end)
  of one stream, one age file after the other in seq order. Each chunk's size is in its signed
  descriptor, so the reader splits the pack and checks every SHA-256 itself.

Who may read is decided exactly as for the single reads (server/trust/access.py), and a trusted
contact's batch read is logged like a single read: one access leaf per request, naming the
stream and the seqs it served (`descriptor S/A-B`, `chunk S/A-B`) — server/trust/access_log.py. So a
contact's reads grow the log no faster than before batching, however much each one serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from crypto.access import WHAT_LIST, what_chunk, what_descriptor
from schemas.batch import (
    MAX_PACK_BYTES,
    PackQuerySchema,
    ReceiptsPageSchema,
    ReceiptsQuerySchema,
)
from schemas.common import SEQ_MAX
from server.api.chunks import receipt_body
from server.api.common import caller, reader_endpoint, refusals
from server.blobs.store import BlobStore
from server.context import services
from server.errors import ApiError, not_found
from server.store.encounters import ChunkRecord
from server.trust.access import readable_encounter
from server.trust.access_log import note_batch_read

blp = Blueprint("batch", __name__, url_prefix="/v1/encounters/<uuid_lower:encounter_id>",
                description="Batch reads: many receipts or chunks per request")

PACK_BODY = {"type": "string", "format": "binary"}


@blp.route("/streams/<stream:stream>/receipts")
class Receipts(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 404, 410)
    @blp.arguments(ReceiptsQuerySchema, location="query")
    @blp.response(200, ReceiptsPageSchema)
    def get(self, query: dict[str, Any], encounter_id: str, stream: str) -> dict[str, Any]:
        """Receipts and signed descriptors of one stream's chunks from seq `start` on, in seq
        order, at most `limit` (500); `next` is where the next page starts."""
        limit = query["limit"]
        with services().store.read() as tx:
            readable_encounter(tx, caller(), encounter_id)
            records = tx.chunk_run(encounter_id, stream, query["start"], SEQ_MAX + 1, limit)
        if records:
            note_batch_read(what_descriptor(stream, records[0].seq, records[-1].seq))
        else:
            note_batch_read(WHAT_LIST)  # it learnt only that there is nothing more
        more = len(records) == limit and records[-1].seq < SEQ_MAX
        return {"receipts": [{**receipt_body(r), "descriptor": r.descriptor} for r in records],
                "next": records[-1].seq + 1 if more else None}


@blp.route("/streams/<stream:stream>/pack")
class ChunkPack(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 400, 404, 410)
    @blp.arguments(PackQuerySchema, location="query")
    @blp.response(200, PACK_BODY, content_type="application/octet-stream",
                  description="the age files of seqs [start, end), concatenated in seq order")
    def get(self, query: dict[str, Any], encounter_id: str, stream: str) -> Response:
        """The bytes of seqs [start, end) of one stream in one response (all must be stored;
        at most 16 MiB unless it is one chunk). Split them by the sizes in the descriptors."""
        start, end = query["start"], query["end"]
        with services().store.read() as tx:
            readable_encounter(tx, caller(), encounter_id)
            records = tx.chunk_run(encounter_id, stream, start, end)
        _check_run(records, stream, start, end)
        note_batch_read(what_chunk(stream, start, end - 1))
        response = Response(_bodies(services().blobs, records),
                            mimetype="application/octet-stream")
        response.headers["Content-Length"] = str(sum(r.size for r in records))
        return response


def _check_run(records: list[ChunkRecord], stream: str, start: int, end: int) -> None:
    held = {r.seq for r in records}
    missing = next((seq for seq in range(start, end) if seq not in held), None)
    if missing is not None:
        raise not_found(f"No chunk {stream}/{missing} is stored for this encounter; ask for "
                        "runs of stored seqs only.")
    total = sum(r.size for r in records)
    if len(records) > 1 and total > MAX_PACK_BYTES:
        raise ApiError(400, "pack_too_large", f"Seqs {start}-{end - 1} of {stream} hold {total} "
                       f"bytes; a pack of several chunks holds at most {MAX_PACK_BYTES} bytes.")


def _bodies(blobs: BlobStore, records: list[ChunkRecord]) -> Iterator[bytes]:
    # One chunk in memory at a time. A blob lost after the headers went out ends the response
    # short, which the reader sees as a cut connection and a size that does not add up.
    for record in records:
        yield blobs.get(record.blob_key)
