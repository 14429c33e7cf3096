"""Bodies of the short-code (PAKE) endpoints: base64 of fixed-size PAKE values, one status."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

MESSAGE_PATTERN = r"^[A-Za-z0-9+/]{44}$"  # 33 bytes (side + element), base64
CONFIRM_PATTERN = r"^[A-Za-z0-9+/]{43}=$"  # HMAC-SHA256, base64
SEALED_PATTERN = r"^[A-Za-z0-9+/]{38,5600}={0,2}$"  # nonce + ChaCha20-Poly1305 of <= 4 KiB
NAMEPLATE_PATTERN = r"^[1-9][0-9]{0,5}$"
STATUSES = ("open", "claimed", "done", "burned")
OWNER_STATUSES = (*STATUSES, "expired")  # expired: open or claimed past expires_at
DEFAULT_LIFETIME = 30 * 60


def _b64(pattern: str, description: str, **kwargs: object) -> fields.String:
    return fields.String(validate=validate.Regexp(pattern, error="not the expected base64"),
                         metadata={"description": description}, **kwargs)  # type: ignore[arg-type]


class AllocateRequestSchema(Schema):
    owner_message = _b64(MESSAGE_PATTERN, "SPAKE2 side A message (33 bytes)", required=True)
    lifetime_seconds = fields.Integer(strict=True, load_default=DEFAULT_LIFETIME,
                                      validate=validate.Range(min=60, max=24 * 3600),
                                      metadata={"description": "how long the code is valid"})


class OwnerMailboxSchema(Schema):
    pake_id = fields.String(required=True)
    nameplate = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(OWNER_STATUSES))
    owner_message = fields.String(required=True)
    contact_message = fields.String(allow_none=True)
    contact_confirm = fields.String(allow_none=True)
    expires_at = fields.String(required=True)
    created_at = fields.String(required=True)
    claimed_at = fields.String(allow_none=True)
    closed_at = fields.String(allow_none=True)


class ClaimRequestSchema(Schema):
    contact_message = _b64(MESSAGE_PATTERN, "SPAKE2 side B message (33 bytes)", required=True)
    contact_confirm = _b64(CONFIRM_PATTERN, "HMAC-SHA256 key confirmation of side B",
                           required=True)


class ContactMailboxSchema(Schema):
    nameplate = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    owner_message = fields.String(required=True)
    owner_confirm = fields.String(allow_none=True)
    sealed = fields.String(allow_none=True)
    expires_at = fields.String(required=True)


class ReplyRequestSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(("done", "burned")),
                            metadata={"description": "done: the contact's confirmation "
                                      "matched; burned: it did not (a wrong guess)"})
    owner_confirm = _b64(CONFIRM_PATTERN, "HMAC-SHA256 key confirmation of side A")
    sealed = _b64(SEALED_PATTERN, "nonce || ChaCha20-Poly1305 of the invitation")
