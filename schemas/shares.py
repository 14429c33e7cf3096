"""Bodies of the share endpoints: re-wrapped age headers and the device's signed grants."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

MAX_GRANTS = 1000
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAX_HEADER_B64 = 4096  # a slot stanza and one X25519 stanza: ~300 bytes
MAX_GRANT_NOTE = 4096


class GrantItemSchema(Schema):
    stream = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_-]{0,31}$"))
    seq = fields.Integer(required=True, strict=True,
                         validate=validate.Range(min=0, max=2**32 - 1))
    header = fields.String(required=True, validate=validate.Length(min=1, max=MAX_HEADER_B64),
                           metadata={"description": "base64 of the re-wrapped age header"})
    grant = fields.String(required=True, validate=validate.Length(min=1, max=MAX_GRANT_NOTE),
                          metadata={"description": "safehold.grant/v1 signed note"})


class GrantPostSchema(Schema):
    contact_id = fields.String(required=True, validate=validate.Regexp(UUID_PATTERN))
    grants = fields.List(fields.Nested(GrantItemSchema), required=True,
                         validate=validate.Length(min=1, max=MAX_GRANTS))


class GrantPostResponseSchema(Schema):
    stored = fields.Integer(required=True, metadata={"description": "how many were new"})


class GrantViewSchema(GrantItemSchema):
    contact_id = fields.String(required=True)
    created_at = fields.String(required=True)


class GrantListSchema(Schema):
    grants = fields.List(fields.Nested(GrantViewSchema), required=True)
