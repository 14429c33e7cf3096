"""Bodies of the account, device and login endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.common import (
    AGE_RECIPIENT_PATTERN,
    key_field,
    signature_field,
    time_field,
    uuid_field,
)

CHALLENGE_PATTERN = r"^[A-Za-z0-9+/]{43}=$"  # 32 random bytes, base64
CODE_MAX = 100


class RegisterRequestSchema(Schema):
    account_id = uuid_field("new account id, made by the device", required=True)
    device_id = uuid_field("new device id, made by the device", required=True)
    device_key = key_field("the device's Ed25519 verifier key (signed-note encoding)",
                           required=True)
    recovery_recipient = fields.String(
        required=True, validate=validate.Regexp(AGE_RECIPIENT_PATTERN, error="must be age1..."),
        metadata={"description": "the owner's recovery age recipient (age1...)"},
    )
    signature = signature_field("device key's signature over the registration statement",
                                required=True)


class RegisterResponseSchema(Schema):
    account_id = fields.String(required=True)
    device_id = fields.String(required=True)


def _one_subject(data: dict[str, Any]) -> None:
    if ("device_id" in data) == ("contact_id" in data):
        raise ValidationError("give exactly one of device_id and contact_id")


class ChallengeRequestSchema(Schema):
    device_id = uuid_field("the device that wants to log in")
    contact_id = uuid_field("or: the trusted contact that wants to log in")

    @validates_schema
    def _subject(self, data: dict[str, Any], **kwargs: Any) -> None:
        _one_subject(data)


class ChallengeResponseSchema(Schema):
    challenge = fields.String(required=True, metadata={"description": "b64 of 32 random bytes"})
    expires_at = time_field("the challenge is refused after this moment", required=True)


class TokenRequestSchema(Schema):
    device_id = uuid_field("the device logging in")
    contact_id = uuid_field("or: the trusted contact logging in")
    challenge = fields.String(
        required=True, validate=validate.Regexp(CHALLENGE_PATTERN, error="not a challenge"),
        metadata={"description": "the challenge exactly as received"},
    )
    signature = signature_field("device (or contact) key's signature over the login statement",
                                required=True)

    @validates_schema
    def _subject(self, data: dict[str, Any], **kwargs: Any) -> None:
        _one_subject(data)


class TokenResponseSchema(Schema):
    token = fields.String(required=True, metadata={"description": "bearer token"})
    expires_at = time_field("the token is refused after this moment", required=True)


class InvitationResponseSchema(Schema):
    code = fields.String(required=True, metadata={"description": "single-use add-device code"})
    expires_at = time_field("the code is refused after this moment", required=True)


class AddDeviceRequestSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=CODE_MAX),
                         metadata={"description": "code from POST /v1/devices/invitations"})
    device_id = uuid_field("new device id, made by the device", required=True)
    device_key = key_field("the new device's Ed25519 verifier key", required=True)
    signature = signature_field("new device key's signature over the add-device statement",
                                required=True)


class AddDeviceResponseSchema(Schema):
    account_id = fields.String(required=True)
    device_id = fields.String(required=True)
    recovery_recipient = fields.String(required=True)


class DeviceSchema(Schema):
    device_id = fields.String(required=True)
    device_key = fields.String(required=True)
    created_at = time_field("when the device joined", required=True)


class AccountResponseSchema(Schema):
    account_id = fields.String(required=True)
    recovery_recipient = fields.String(required=True)
    devices = fields.List(fields.Nested(DeviceSchema), required=True)
