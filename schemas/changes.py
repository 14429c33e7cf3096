"""Query string and body of the changes feed."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import time_field

MAX_CHANGES_PER_PAGE = 1000


class ChangesQuerySchema(Schema):
    cursor = fields.String(validate=validate.Length(max=200),
                           metadata={"description": "opaque; from the previous page"})
    limit = fields.Integer(load_default=100,
                           validate=validate.Range(min=1, max=MAX_CHANGES_PER_PAGE))


class ChangeSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True,
                         metadata={"description": "encounter_created, chunk_stored, ..."})
    encounter_id = fields.String(required=True, allow_none=True)
    stream = fields.String(required=True, allow_none=True)
    seq = fields.Integer(required=True, allow_none=True)
    at = time_field("when it happened", required=True)


class ChangesResponseSchema(Schema):
    changes = fields.List(fields.Nested(ChangeSchema), required=True)
    cursor = fields.String(required=True, metadata={"description": "pass back to continue"})
    done = fields.Boolean(required=True, metadata={"description": "no more changes right now"})
