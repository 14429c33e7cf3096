"""Query strings and bodies of the batch reads a fetch uses: a stream's receipts by the page
and its chunks' bodies by the pack (many chunks in one response)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.chunks import ReceiptWithDescriptorSchema
from schemas.common import SEQ_MAX

MAX_RECEIPTS_PER_PAGE = 500
MAX_PACK_CHUNKS = 256
MAX_PACK_BYTES = 16 * 1024 * 1024  # a pack of one chunk is always allowed, whatever its size


class ReceiptsQuerySchema(Schema):
    start = fields.Integer(load_default=0, validate=validate.Range(min=0, max=SEQ_MAX),
                           metadata={"description": "first seq to look from"})
    limit = fields.Integer(load_default=MAX_RECEIPTS_PER_PAGE,
                           validate=validate.Range(min=1, max=MAX_RECEIPTS_PER_PAGE),
                           metadata={"description": "at most this many receipts"})


class ReceiptsPageSchema(Schema):
    receipts = fields.List(fields.Nested(ReceiptWithDescriptorSchema), required=True,
                           metadata={"description": "in seq order"})
    next = fields.Integer(required=True, allow_none=True,
                          metadata={"description": "`start` of the next page; null: no more"})


class PackQuerySchema(Schema):
    start = fields.Integer(required=True, validate=validate.Range(min=0, max=SEQ_MAX),
                           metadata={"description": "first seq (inclusive)"})
    end = fields.Integer(required=True, validate=validate.Range(min=1, max=SEQ_MAX + 1),
                         metadata={"description": f"last seq (exclusive); at most "
                                                  f"{MAX_PACK_CHUNKS} seqs after start"})

    @validates_schema
    def _bounded(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not 0 < data["end"] - data["start"] <= MAX_PACK_CHUNKS:
            raise ValidationError(f"need start < end <= start + {MAX_PACK_CHUNKS}", "end")
