"""Trusted contacts: invitations, the owner's contact list, alert/safe, releases, access log."""

from __future__ import annotations

import re
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.contacts import (
    INVITATION_ID_PATTERN,
    AcceptRequestSchema,
    AcceptResponseSchema,
    AccessLogSchema,
    ContactInvitationRequestSchema,
    ContactInvitationResponseSchema,
    ContactListSchema,
    ContactSchema,
    ContactSelfSchema,
    ContactUpdateSchema,
    InvitationTermsSchema,
    MarkResponseSchema,
    ReleasedListSchema,
)
from server.api.common import (
    caller,
    contact_endpoint,
    device_endpoint,
    public_endpoint,
    refusals,
)
from server.context import services
from server.errors import not_found
from server.store.contacts import ALERT, SAFE, ContactInvitation
from server.trust import contacts
from server.trust.access import writable_encounter
from server.trust.access_log import record_contact_read
from server.trust.contact_reads import released_list
from server.trust.marks import add_mark

blp = Blueprint("contacts", __name__, url_prefix="/v1", description="Trusted contacts")
blp.after_app_request(record_contact_read)

Reply = tuple[dict[str, Any], int]
INVITATION_PATH = "/invitations/<string(length=22):invitation_id>"


def _invitation_id(value: str) -> str:
    if not re.fullmatch(INVITATION_ID_PATTERN, value):
        raise not_found("There is no such invitation.")
    return value


def terms_body(invitation: ContactInvitation, accepted: bool,
               encounter_id: str | None = None) -> dict[str, Any]:
    return {"invitation_id": invitation.invitation_id, "server": services().server_name,
            "account_id": invitation.account_id,
            "recovery_recipient": invitation.owner_recipient,
            "device_keys": invitation.owner_device_keys, "policy": invitation.policy,
            "check_in_minutes": invitation.check_in_minutes,
            "expires_at": invitation.expires_at, "owner_proof": invitation.owner_proof,
            "accepted": accepted, "encounter_id": encounter_id}


@blp.route("/contacts/invitations")
class ContactInvitations(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 400, 409)
    @blp.arguments(ContactInvitationRequestSchema)
    @blp.response(201, ContactInvitationResponseSchema, description="stored")
    @blp.alt_response(200, schema=ContactInvitationResponseSchema, description="already so")
    def post(self, body: dict[str, Any]) -> Reply:
        """Store an invitation made on this device (its secret stays on the device)."""
        invitation, created = contacts.create_invitation(services(), caller(), body)
        return {"invitation_id": invitation.invitation_id, "expires_at": invitation.expires_at,
                "created_at": invitation.created_at}, 201 if created else 200


@blp.route("/contacts")
class Contacts(MethodView):
    @device_endpoint(blp)
    @blp.response(200, ContactListSchema)
    def get(self) -> dict[str, Any]:
        """This account's contacts (pending, active and revoked), with their keys and proofs."""
        with services().store.read() as tx:
            found = tx.contacts_of(caller().account_id)
        return {"contacts": [contacts.owner_view(c) for c in found]}


@blp.route("/contacts/<uuid_lower:contact_id>")
class ContactById(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, ContactSchema)
    def get(self, contact_id: str) -> dict[str, Any]:
        """One of this account's contacts."""
        with services().store.read() as tx:
            return contacts.owner_view(contacts.owned_contact(tx, caller(), contact_id))

    @device_endpoint(blp)
    @refusals(blp, 404, 409)
    @blp.arguments(ContactUpdateSchema)
    @blp.response(200, ContactSchema)
    def patch(self, body: dict[str, Any], contact_id: str) -> dict[str, Any]:
        """Rename the contact or change its release policy."""
        return contacts.owner_view(contacts.update_contact(services(), caller(), contact_id,
                                                           body))

    @device_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, ContactSchema)
    def delete(self, contact_id: str) -> dict[str, Any]:
        """Revoke the contact: from now on nothing is served to it (idempotent)."""
        return contacts.owner_view(contacts.revoke_contact(services(), caller(), contact_id))


@blp.route("/contacts/<uuid_lower:contact_id>/confirm")
class ContactConfirm(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 404, 409)
    @blp.response(200, ContactSchema)
    def post(self, contact_id: str) -> dict[str, Any]:
        """After the device verified the contact's proof: make the contact active."""
        return contacts.owner_view(contacts.confirm_contact(services(), caller(), contact_id))


@blp.route(INVITATION_PATH)
class Invitation(MethodView):
    @public_endpoint(blp)
    @refusals(blp, 404, 410)
    @blp.response(200, InvitationTermsSchema)
    def get(self, invitation_id: str) -> dict[str, Any]:
        """The owner's keys and terms, with the owner's proof for the contact's app to check."""
        svc = services()
        with svc.store.read() as tx:
            invitation = contacts.open_invitation(tx, _invitation_id(invitation_id), svc.now())
            accepted = tx.contact_by_invitation(invitation_id) is not None
            scope = tx.shared_encounter_of_invitation(invitation_id)
        return terms_body(invitation, accepted, scope)


@blp.route(INVITATION_PATH + "/accept")
class InvitationAccept(MethodView):
    @public_endpoint(blp)
    @refusals(blp, 400, 404, 409, 410)
    @blp.arguments(AcceptRequestSchema)
    @blp.response(201, AcceptResponseSchema, description="accepted; pending the owner")
    @blp.alt_response(200, schema=AcceptResponseSchema, description="already accepted so")
    def post(self, body: dict[str, Any], invitation_id: str) -> Reply:
        """Register the contact's keys with the proof made from the invitation secret."""
        contact, created = contacts.accept_invitation(services(),
                                                      _invitation_id(invitation_id), body)
        return {"contact_id": contact.contact_id, "status": contact.status,
                "accepted_at": contact.accepted_at,
                "webhook_secret": contact.webhook_secret}, 201 if created else 200


@blp.route("/contact")
class ContactSelf(MethodView):
    @contact_endpoint(blp)
    @blp.response(200, ContactSelfSchema)
    def get(self) -> dict[str, Any]:
        """The calling contact's own record (is it confirmed yet?)."""
        with services().store.read() as tx:
            found = tx.contact(caller().contact_id)
        if found is None:
            raise not_found("This contact no longer exists.")
        return contacts.self_view(found)


@blp.route("/released")
class Released(MethodView):
    @contact_endpoint(blp)
    @blp.response(200, ReleasedListSchema)
    def get(self) -> dict[str, Any]:
        """Encounters released to the calling contact, oldest first."""
        return {"encounters": released_list(services(), caller())}


def _mark(encounter_id: str, kind: str) -> dict[str, Any]:
    mark = add_mark(services(), caller(), encounter_id, kind)
    return {"encounter_id": mark.encounter_id, "kind": mark.kind, "at": mark.at}


@blp.route("/encounters/<uuid_lower:encounter_id>/alert")
class Alert(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(201, MarkResponseSchema)
    def post(self, encounter_id: str) -> dict[str, Any]:
        """Raise an alert: releases to on_alert and check_in contacts, and tells them."""
        return _mark(encounter_id, ALERT)


@blp.route("/encounters/<uuid_lower:encounter_id>/safe")
class Safe(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(201, MarkResponseSchema)
    def post(self, encounter_id: str) -> dict[str, Any]:
        """Mark yourself safe: before a check-in deadline, it stops that release."""
        return _mark(encounter_id, SAFE)


@blp.route("/encounters/<uuid_lower:encounter_id>/access-log")
class AccessLog(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, AccessLogSchema)
    def get(self, encounter_id: str) -> dict[str, Any]:
        """Every read of this encounter by a trusted contact (who, what, when, which leaf)."""
        with services().store.read() as tx:
            writable_encounter(tx, caller(), encounter_id)
            entries = tx.access_log_of(encounter_id)
            names = {c.contact_id: c.name for c in tx.contacts_of(caller().account_id)}
        return {"entries": [{"contact_id": e.contact_id, "contact_name":
                             names.get(e.contact_id, ""), "what": e.what, "at": e.at,
                             "leaf_index": e.leaf_index} for e in entries]}
