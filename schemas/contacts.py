"""Bodies of the trusted-contact endpoints: invitations, contacts, alert/safe, releases, reads."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.common import (
    AGE_RECIPIENT_PATTERN,
    key_field,
    signature_field,
    time_field,
)
from schemas.deletion import DeletionSchema

INVITATION_ID_PATTERN = r"^[A-Za-z0-9_-]{22}$"  # 16 random bytes, unpadded base64url
PROOF_PATTERN = r"^[A-Za-z0-9+/]{43}=$"  # HMAC-SHA256, standard base64
POLICIES = ("immediate", "on_alert", "check_in")
MAX_CHECK_IN_MINUTES = 7 * 24 * 60
MAX_DEVICE_KEYS = 50
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,100}$"  # one line of printable text


def _name(description: str, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(NAME_PATTERN, error="1-100 printable "
                                                  "characters on one line"),
                         metadata={"description": description}, **kwargs)


def _invitation_id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(INVITATION_ID_PATTERN,
                                                  error="must be 22 base64url characters"),
                         metadata={"description": "the part of the code before the dot"},
                         **kwargs)


def _policy(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(POLICIES),
                         metadata={"description": "immediate | on_alert | check_in"}, **kwargs)


def _minutes(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, allow_none=True,
                          validate=validate.Range(min=1, max=MAX_CHECK_IN_MINUTES),
                          metadata={"description": "check_in only: minutes after the "
                                    "encounter starts within which the owner must mark safe"},
                          **kwargs)


def _recipient(description: str, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(AGE_RECIPIENT_PATTERN,
                                                  error="must be age1..."),
                         metadata={"description": description}, **kwargs)


def check_policy_minutes(data: dict[str, Any], partial: bool = False) -> None:
    policy, minutes = data.get("policy"), data.get("check_in_minutes")
    if partial and "policy" not in data:
        if minutes is not None:
            raise ValidationError("give check_in_minutes together with policy check_in",
                                  "check_in_minutes")
        return
    if policy == "check_in" and minutes is None:
        raise ValidationError("the check_in policy needs check_in_minutes", "check_in_minutes")
    if policy != "check_in" and minutes is not None:
        raise ValidationError("check_in_minutes is only for the check_in policy",
                              "check_in_minutes")


class ContactInvitationRequestSchema(Schema):
    invitation_id = _invitation_id(required=True)
    name = _name("what the owner calls this contact", required=True)
    policy = _policy(required=True)
    check_in_minutes = _minutes(load_default=None)
    expires_at = time_field("after this the invitation can no longer be accepted",
                            required=True)
    recovery_recipient = _recipient("the account's recovery recipient (as in the proof)",
                                    required=True)
    device_keys = fields.List(key_field("a device verifier key"), required=True,
                              validate=validate.Length(min=1, max=MAX_DEVICE_KEYS))
    owner_proof = fields.String(required=True, validate=validate.Regexp(PROOF_PATTERN),
                                metadata={"description": "b64 HMAC over the owner terms"})
    encounter_id = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"), metadata={
        "description": "a one-encounter share (`safehold device share`): the only encounter "
                       "the recipient may read"})

    @validates_schema
    def _policy_minutes(self, data: dict[str, Any], **kwargs: Any) -> None:
        check_policy_minutes(data)


class ContactInvitationResponseSchema(Schema):
    invitation_id = fields.String(required=True)
    expires_at = time_field("the invitation expires then", required=True)
    created_at = time_field("when the server stored it", required=True)


class InvitationTermsSchema(Schema):
    """What a contact's app is shown before accepting (all covered by owner_proof)."""

    invitation_id = fields.String(required=True)
    server = fields.String(required=True, metadata={"description": "server name"})
    account_id = fields.String(required=True)
    recovery_recipient = fields.String(required=True)
    device_keys = fields.List(fields.String(), required=True)
    policy = fields.String(required=True)
    check_in_minutes = fields.Integer(required=True, allow_none=True)
    expires_at = time_field("the invitation expires then", required=True)
    owner_proof = fields.String(required=True)
    accepted = fields.Boolean(required=True)
    encounter_id = fields.String(allow_none=True, metadata={
        "description": "set for a one-encounter share (covered by owner_proof)"})


class AcceptRequestSchema(Schema):
    age_recipient = _recipient("the contact's age recipient: chunks are sealed to it",
                               required=True)
    contact_key = key_field("the contact's Ed25519 verifier key (logs in with it)",
                            required=True)
    proof = fields.String(required=True, validate=validate.Regexp(PROOF_PATTERN),
                          metadata={"description": "b64 HMAC over the contact keys"})
    signature = signature_field("contact key's signature over the accept statement",
                                required=True)
    notify_webhook_url = fields.String(
        load_default=None, allow_none=True,
        validate=validate.URL(schemes={"http", "https"}, require_tld=False),
        metadata={"description": "where the server POSTs HMAC-signed notifications"})
    notify_email = fields.Email(load_default=None, allow_none=True,
                                metadata={"description": "where notifications are emailed"})


class AcceptResponseSchema(Schema):
    contact_id = fields.String(required=True, metadata={"description": "log in with this id"})
    status = fields.String(required=True, metadata={"description": "pending until the owner's "
                                                    "device verifies the proof and confirms"})
    accepted_at = time_field("when the server took the acceptance", required=True)
    webhook_secret = fields.String(required=True, allow_none=True,
                                   metadata={"description": "HMAC key of the webhook "
                                             "signatures; only in this answer"})


class ContactSchema(Schema):
    """A contact as its owner's devices see it."""

    contact_id = fields.String(required=True)
    invitation_id = fields.String(required=True)
    name = fields.String(required=True)
    policy = fields.String(required=True)
    check_in_minutes = fields.Integer(required=True, allow_none=True)
    status = fields.String(required=True, metadata={"description": "pending | active | revoked"})
    age_recipient = fields.String(required=True)
    contact_key = fields.String(required=True)
    proof = fields.String(required=True, metadata={"description": "the contact's proof; "
                                                   "check it with the invitation secret"})
    notify_webhook = fields.Boolean(required=True)
    notify_email = fields.Boolean(required=True)
    accepted_at = time_field("accepted", required=True)
    confirmed_at = time_field("confirmed by the owner", required=True, allow_none=True)
    revoked_at = time_field("revoked by the owner", required=True, allow_none=True)


class ContactListSchema(Schema):
    contacts = fields.List(fields.Nested(ContactSchema), required=True)


class ContactUpdateSchema(Schema):
    name = _name("a new name")
    policy = _policy()
    check_in_minutes = _minutes()

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("give name, policy or both")
        check_policy_minutes(data, partial=True)


class ContactSelfSchema(Schema):
    """A contact's own record, as the contact sees it."""

    contact_id = fields.String(required=True)
    account_id = fields.String(required=True, metadata={"description": "whose contact"})
    status = fields.String(required=True)
    policy = fields.String(required=True)
    check_in_minutes = fields.Integer(required=True, allow_none=True)
    notify_webhook_url = fields.String(required=True, allow_none=True)
    notify_email = fields.String(required=True, allow_none=True)
    accepted_at = time_field("accepted", required=True)
    confirmed_at = time_field("confirmed by the owner", required=True, allow_none=True)


class ReleasedEncounterSchema(Schema):
    encounter_id = fields.String(required=True)
    started_at = time_field("device clock", required=True)
    created_at = time_field("server clock", required=True)
    log_origin = fields.String(required=True)
    released_at = time_field("when the policy released it", required=True)
    reason = fields.String(required=True, metadata={"description": "immediate | alert | "
                                                    "check_in | share (a one-encounter share)"})
    deletion = fields.Nested(DeletionSchema, required=True, allow_none=True, metadata={
        "description": "a scheduled or held deletion: place a hold to stop it"})


class ReleasedListSchema(Schema):
    encounters = fields.List(fields.Nested(ReleasedEncounterSchema), required=True)


class MarkResponseSchema(Schema):
    encounter_id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "alert | safe"})
    at = time_field("server time of the mark", required=True)


class AccessEntrySchema(Schema):
    contact_id = fields.String(required=True)
    contact_name = fields.String(required=True)
    what = fields.String(required=True, metadata={"description": "list | log | chunk S/N | "
                                                  "descriptor S/N"})
    at = time_field("when", required=True)
    leaf_index = fields.Integer(required=True, metadata={"description": "its leaf in the log"})


class AccessLogSchema(Schema):
    entries = fields.List(fields.Nested(AccessEntrySchema), required=True)
