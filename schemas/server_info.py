"""Body of GET /v1/server."""

from __future__ import annotations

from marshmallow import Schema, fields


class LimitsSchema(Schema):
    max_chunk_bytes = fields.Integer(required=True)
    max_streams_per_encounter = fields.Integer(required=True)
    requests_per_minute = fields.Integer(required=True)
    # Batch reads (docs/protocol.md): a fetch asks for no more than these in one request.
    max_leaves_per_page = fields.Integer(required=True)
    max_receipts_per_page = fields.Integer(required=True)
    max_pack_chunks = fields.Integer(required=True)
    max_pack_bytes = fields.Integer(required=True)


class ServerInfoSchema(Schema):
    name = fields.String(required=True, metadata={"description": "host[:port]; names the key"})
    server_key = fields.String(required=True, metadata={"description": "Ed25519 verifier key"})
    fingerprint = fields.String(required=True,
                                metadata={"description": "hex SHA-256 of the raw public key"})
    direct_uploads = fields.Boolean(
        load_default=False,
        metadata={"description": "chunk bodies may go straight to S3 (…/direct, …/commit)"})
    limits = fields.Nested(LimitsSchema, required=True)
