"""Field types and validators shared by every request and response schema.

The patterns here are the wire formats of docs/protocol.md; the server checks the cryptography
(keys, signatures) itself, these only check shape so that a malformed request is refused with
`invalid_request` before any work is done.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
STREAM_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
# Bech32 data characters; an X25519 age recipient is "age1" + 58 of them.
AGE_RECIPIENT_PATTERN = r"^age1[02-9ac-hj-np-z]{58}$"
# A 64-byte Ed25519 signature in standard base64 with padding.
SIGNATURE_PATTERN = r"^[A-Za-z0-9+/]{86}==$"
MAX_KEY_CHARS = 300
SEQ_MAX = 2**32 - 1


def uuid_field(description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(UUID_PATTERN, error="must be a lowercase UUID"),
        metadata={"description": description, "example": "0b6e1c1e-6f8a-4c1e-9d2b-2f1f3c4d5e6f"},
        **kwargs,
    )


def stream_field(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(STREAM_PATTERN, error="must match [a-z][a-z0-9_-]{0,31}"),
        metadata={"description": "stream name, e.g. audio, video, log"},
        **kwargs,
    )


def seq_field(**kwargs: Any) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=SEQ_MAX),
        metadata={"description": "sequence number within the stream"},
        **kwargs,
    )


def signature_field(description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(SIGNATURE_PATTERN, error="must be a base64 Ed25519 signature"),
        metadata={"description": description},
        **kwargs,
    )


def key_field(description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(min=1, max=MAX_KEY_CHARS),
        metadata={"description": description},
        **kwargs,
    )


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds: the one time format on the wire."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_OFFSET_REQUIRED = re.compile(r".*(Z|z|[+-]\d\d:\d\d)$")


class Rfc3339(fields.Field):
    """An RFC 3339 timestamp with a time zone; loaded as the normalised UTC string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or len(value) > 40 or not _OFFSET_REQUIRED.fullmatch(value):
            raise ValidationError("must be an RFC 3339 timestamp with a time zone")
        try:
            moment = datetime.fromisoformat(value.replace("z", "Z"))
            return format_time(moment)
        except (ValueError, OverflowError):
            raise ValidationError("must be an RFC 3339 timestamp with a time zone")

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def time_field(description: str, **kwargs: Any) -> Rfc3339:
    return Rfc3339(metadata={"description": description,
                             "example": "2026-11-28T03:30:01.123Z"}, **kwargs)


class Base64List(fields.List):
    """A list of base64 strings (hashes in proofs)."""

    def __init__(self, description: str, **kwargs: Any) -> None:
        super().__init__(fields.String(), metadata={"description": description}, **kwargs)


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine-readable code"})
    message = fields.String(required=True, metadata={"description": "a sentence for people"})
    details = fields.Raw(metadata={"description": "optional structured details"})


class ErrorEnvelopeSchema(Schema):
    """Every failure, whatever its status, has this body."""

    error = fields.Nested(ErrorBodySchema, required=True)
