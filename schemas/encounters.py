"""Bodies of the encounter endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.common import time_field
from schemas.deletion import DeletionSchema


class EncounterPutSchema(Schema):
    started_at = time_field("when the recording started (device clock)", required=True)


class EncounterSchema(Schema):
    encounter_id = fields.String(required=True)
    started_at = time_field("when the recording started (device clock)", required=True)
    created_at = time_field("when the server first heard of it", required=True)
    log_origin = fields.String(required=True, metadata={"description": "checkpoint origin line"})
    deletion = fields.Nested(DeletionSchema, allow_none=True, metadata={
        "description": "a scheduled or held deletion (lists and reads; null if none)"})


class EncounterListSchema(Schema):
    encounters = fields.List(fields.Nested(EncounterSchema), required=True)


class StreamHoldingsSchema(Schema):
    seqs = fields.List(fields.Integer(), required=True,
                       metadata={"description": "sequence numbers stored, ascending"})
    final_seq = fields.Integer(required=True, allow_none=True,
                               metadata={"description": "seq of the final chunk, if it arrived"})


class EncounterDetailSchema(EncounterSchema):
    log_size = fields.Integer(required=True, metadata={"description": "leaves in the log"})
    shared = fields.Boolean(dump_default=False, metadata={
        "description": "true for a one-encounter share's recipient: her chunks' re-wrapped "
                       "headers are at GET /v1/encounters/{id}/grants"})
    streams = fields.Dict(keys=fields.String(), values=fields.Nested(StreamHoldingsSchema),
                          required=True)
