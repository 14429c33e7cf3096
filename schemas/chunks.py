"""Headers and bodies of the chunk endpoints (the chunk itself travels as raw bytes)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import Base64List, time_field

DESCRIPTOR_HEADER = "Safehold-Descriptor"
MAX_DESCRIPTOR_HEADER = 4096


class ChunkHeadersSchema(Schema):
    descriptor = fields.String(
        data_key=DESCRIPTOR_HEADER, required=True,
        validate=validate.Length(max=MAX_DESCRIPTOR_HEADER),
        metadata={"description": "b64 of the device-signed descriptor note"},
    )


class ReceiptSchema(Schema):
    encounter_id = fields.String(required=True)
    stream = fields.String(required=True)
    seq = fields.Integer(required=True)
    leaf_index = fields.Integer(required=True)
    tree_size = fields.Integer(required=True)
    checkpoint = fields.String(required=True, metadata={"description": "signed checkpoint note"})
    inclusion_proof = Base64List("hashes from the leaf to the checkpoint's root", required=True)
    received_at = time_field("when the server stored the chunk", required=True)


class ReceiptWithDescriptorSchema(ReceiptSchema):
    descriptor = fields.String(required=True, metadata={"description": "signed descriptor note"})


class PresignedPutSchema(Schema):
    """Where and how to PUT one chunk body straight to S3 (direct uploads)."""

    method = fields.String(required=True, metadata={"description": "always PUT"})
    url = fields.String(required=True, metadata={"description": "presigned S3 URL"})
    headers = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                          metadata={"description": "send exactly these headers (length, "
                                    "x-amz-checksum-sha256, If-None-Match: *)"})
    expires_in = fields.Integer(required=True, metadata={"description": "seconds it stays valid"})
