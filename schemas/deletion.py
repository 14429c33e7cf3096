"""Bodies of the deletion endpoints (DELETE /v1/encounters/{id}, .../deletion, .../hold)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import time_field

DELETION_STATES = ("scheduled", "held", "cancelled", "deleting", "done")


class DeletionSchema(Schema):
    encounter_id = fields.String(required=True)
    state = fields.String(
        required=True, validate=validate.OneOf(DELETION_STATES),
        metadata={"description": "scheduled: will run at due_at unless held or cancelled; "
                  "held: a trusted contact stopped it; cancelled: the owner withdrew it; "
                  "deleting/done: being carried out / carried out"})
    requested_at = time_field("when the owner asked", required=True)
    due_at = time_field("when the deletion runs if nobody holds it", required=True)
    held_at = time_field("when a contact placed a hold (who is not shown)", allow_none=True)
    cancelled_at = time_field("when the owner cancelled it", allow_none=True)
    deleted_at = time_field("when it was carried out", allow_none=True)
