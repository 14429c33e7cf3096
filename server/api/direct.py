"""Direct uploads (docs/protocol.md): a presigned S3 PUT for one chunk, then its commit."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.chunks import PresignedPutSchema, ReceiptSchema
from server.api.chunks import CHUNK_HEADERS, CHUNK_PATH, receipt_body
from server.api.common import caller, device_endpoint, refusals
from server.context import services
from server.evidence.direct import PRESIGN_SECONDS, commit, presign

blp = Blueprint("direct", __name__, url_prefix="/v1",
                description="Direct uploads of chunk bodies to S3")


@blp.route(CHUNK_PATH + "/direct")
class DirectUpload(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 400, 404, 409, 413, 503)
    @blp.arguments(CHUNK_HEADERS, location="headers")
    @blp.response(200, PresignedPutSchema, description="PUT the body here, then commit")
    def post(self, headers: dict[str, Any], encounter_id: str, stream: str,
             seq: int) -> dict[str, Any]:
        """A presigned PUT pinned to the signed descriptor's length, SHA-256 and write-once."""
        put = presign(services(), caller(), (encounter_id, stream, seq), headers["descriptor"])
        return {"method": put.method, "url": put.url, "headers": put.headers,
                "expires_in": PRESIGN_SECONDS}


@blp.route(CHUNK_PATH + "/commit")
class DirectCommit(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 400, 404, 409, 413, 503)
    @blp.arguments(CHUNK_HEADERS, location="headers")
    @blp.response(201, ReceiptSchema, description="confirmed and stored now; the receipt")
    @blp.alt_response(200, schema=ReceiptSchema, description="already stored; the same receipt")
    def post(self, headers: dict[str, Any], encounter_id: str, stream: str,
             seq: int) -> tuple[dict[str, Any], int]:
        """Confirm the object uploaded to S3 (re-read, re-hashed, checked) and append it."""
        record, created = commit(services(), caller(), (encounter_id, stream, seq),
                                 headers["descriptor"])
        return receipt_body(record), 201 if created else 200
