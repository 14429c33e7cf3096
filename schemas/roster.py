"""Bodies of the roster endpoints (docs/protocol.md, "Device roster")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

MAX_NOTE = 4096  # crypto/roster.py MAX_NOTE_CHARS
PROOF_PATTERN = r"^[A-Za-z0-9+/]{43}=$"  # HMAC-SHA256, base64


def note_field(description: str, **kwargs: object) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=MAX_NOTE),
                         metadata={"description": description}, **kwargs)  # type: ignore[arg-type]


class RosterResponseSchema(Schema):
    account_id = fields.String(required=True)
    statements = fields.List(fields.String(), required=True,
                             metadata={"description": "the signed statements, seq 0 first"})


class RosterStatementRequestSchema(Schema):
    statement = note_field("a roster statement signed by a device of the roster", required=True)


class RosterStatementResponseSchema(Schema):
    seq = fields.Integer(required=True)
    hash = fields.String(required=True, metadata={"description": "hex SHA-256 of the note"})


class LinkRequestSchema(Schema):
    proof = fields.String(
        required=True, validate=validate.Regexp(PROOF_PATTERN, error="must be base64 HMAC"),
        metadata={"description": "HMAC of the link statement under the link code's secret"})


class LinkRequestItemSchema(Schema):
    device_id = fields.String(required=True)
    device_key = fields.String(required=True)
    proof = fields.String(required=True)
    created_at = fields.String(required=True)


class LinkRequestListSchema(Schema):
    requests = fields.List(fields.Nested(LinkRequestItemSchema), required=True)


class ContactSetRequestSchema(Schema):
    statement = note_field("a contact set signed by a device of the roster", required=True)


class ContactSetResponseSchema(Schema):
    statement = fields.String(required=True, allow_none=True)
