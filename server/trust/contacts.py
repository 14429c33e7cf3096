"""Trusted contacts: invitations, acceptance, the owner's confirmation, changes and revocation.

The server stores and relays; it cannot check the invitation proofs (it never sees the
secret). The owner's device checks the contact's proof before it confirms, and the contact's
app checks the owner's proof before it accepts (crypto/invitation.py). Until the owner's device
confirms, a contact is `pending` and nothing is released to it.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from crypto.descriptor import parse_time
from crypto.errors import CryptoError
from crypto.invitation import owner_terms
from schemas.statements import accept_invitation_statement
from server.context import Services
from server.errors import ApiError, not_found
from server.identity.accounts import check_device_key, check_recipient, check_signature
from server.identity.auth import Caller, iso
from server.store.contacts import ACTIVE, PENDING, REVOKED, Contact, ContactInvitation
from server.store.metadata import Tx
from server.trust.release import announce_releases, moment
from server.trust.shares import check_share_scope

MAX_INVITATION_DAYS = 30
WEBHOOK_SECRET_BYTES = 32


def _bad_invitation(message: str) -> ApiError:
    return ApiError(400, "bad_invitation", message)


def _check_owner_terms(tx: Tx, svc: Services, caller: Caller, body: dict[str, Any]) -> None:
    account = tx.account(caller.account_id)
    assert account is not None  # tokens belong to existing accounts
    if body["recovery_recipient"] != account.recovery_recipient:
        raise _bad_invitation("recovery_recipient is not this account's recovery recipient.")
    own = {d.device_key for d in tx.devices_of(caller.account_id)}
    if not set(body["device_keys"]) <= own:
        raise _bad_invitation("device_keys must be keys of this account's devices.")
    try:
        owner_terms(body["invitation_id"], svc.server_name, caller.account_id,
                    body["recovery_recipient"], body["device_keys"], body["policy"],
                    body["check_in_minutes"], body["expires_at"], body.get("encounter_id"))
    except CryptoError as exc:
        raise _bad_invitation(f"The invitation terms are not well-formed: {exc}")


def _check_expiry(expires_at: str, now: float) -> None:
    expires = parse_time(expires_at)
    if expires <= moment(now):
        raise _bad_invitation("expires_at is in the past.")
    if expires > moment(now) + timedelta(days=MAX_INVITATION_DAYS):
        raise _bad_invitation(f"An invitation may last at most {MAX_INVITATION_DAYS} days.")


def create_invitation(svc: Services, caller: Caller,
                      body: dict[str, Any]) -> tuple[ContactInvitation, bool]:
    """Store an invitation the owner's device made; (invitation, created). Idempotent."""
    now = svc.now()
    invitation = ContactInvitation(
        invitation_id=body["invitation_id"], account_id=caller.account_id,
        created_by=caller.device_id, name=body["name"], policy=body["policy"],
        check_in_minutes=body["check_in_minutes"],
        owner_recipient=body["recovery_recipient"],
        owner_device_keys=sorted(set(body["device_keys"])), owner_proof=body["owner_proof"],
        expires_at=body["expires_at"], created_at=iso(now))
    with svc.store.write() as tx:
        existing = tx.contact_invitation(invitation.invitation_id)
        if existing is not None:
            if existing == ContactInvitation(**{**vars(invitation),
                                                "created_at": existing.created_at}):
                return existing, False
            raise ApiError(409, "invitation_exists", "This invitation id is taken; make a "
                           "new code.")
        _check_owner_terms(tx, svc, caller, body)
        _check_expiry(invitation.expires_at, now)
        check_share_scope(tx, caller.account_id, body.get("encounter_id"))
        tx.insert_contact_invitation(invitation)
        if body.get("encounter_id") is not None:
            tx.insert_share(invitation.invitation_id, caller.account_id, body["encounter_id"],
                            iso(now))
    return invitation, True


def open_invitation(tx: Tx, invitation_id: str, now: float) -> ContactInvitation:
    """The invitation a contact may still look at or accept (404 unknown, 410 expired)."""
    invitation = tx.contact_invitation(invitation_id)
    if invitation is None or invitation.withdrawn_at is not None:
        raise not_found("There is no such invitation.")
    if parse_time(invitation.expires_at) <= moment(now):
        raise ApiError(410, "invitation_expired", "This invitation has expired; ask for a "
                       "new one.")
    return invitation


def accept_invitation(svc: Services, invitation_id: str,
                      body: dict[str, Any]) -> tuple[Contact, bool]:
    """Register the contact's keys as `pending`; (contact, created). Repeats are idempotent."""
    check_recipient(body["age_recipient"])
    check_device_key(body["contact_key"])
    check_signature(accept_invitation_statement(svc.server_name, invitation_id,
                                                body["age_recipient"], body["contact_key"]),
                    body["signature"], body["contact_key"])
    now = svc.now()
    with svc.store.write() as tx:
        existing = tx.contact_by_invitation(invitation_id)
        if existing is not None:
            if (existing.age_recipient, existing.contact_key, existing.proof) == \
                    (body["age_recipient"], body["contact_key"], body["proof"]):
                return existing, False
            raise ApiError(409, "invitation_used", "This invitation was already accepted; "
                           "ask for a new one.")
        invitation = open_invitation(tx, invitation_id, now)
        contact = _new_contact(tx, invitation, body, iso(now))
        tx.insert_contact(contact)
        tx.insert_change(invitation.account_id, "contact_accepted", iso(now))
    return contact, True


def _new_contact(tx: Tx, invitation: ContactInvitation, body: dict[str, Any],
                 now: str) -> Contact:
    contact_id = str(uuid.uuid4())
    while tx.contact(contact_id) is not None or tx.device(contact_id) is not None:
        contact_id = str(uuid.uuid4())
    webhook = body.get("notify_webhook_url")
    return Contact(
        contact_id=contact_id, account_id=invitation.account_id,
        invitation_id=invitation.invitation_id, name=invitation.name,
        policy=invitation.policy, check_in_minutes=invitation.check_in_minutes,
        age_recipient=body["age_recipient"], contact_key=body["contact_key"],
        proof=body["proof"], status=PENDING, notify_webhook_url=webhook,
        notify_email=body.get("notify_email"),
        webhook_secret=secrets.token_urlsafe(WEBHOOK_SECRET_BYTES) if webhook else None,
        accepted_at=now, confirmed_at=None, revoked_at=None, updated_at=now)


def owned_contact(tx: Tx, caller: Caller, contact_id: str) -> Contact:
    contact = tx.contact(contact_id)
    if contact is None or contact.account_id != caller.account_id:
        raise not_found("There is no such contact (or it is not yours).")
    return contact


def _revoked(contact: Contact) -> ApiError:
    return ApiError(409, "contact_revoked", f"Contact {contact.contact_id} was removed; "
                    "invite them again to add them back.")


def confirm_contact(svc: Services, caller: Caller, contact_id: str) -> Contact:
    """The owner's device checked the contact's proof: releases may now reach the contact."""
    now = svc.now()
    with svc.store.write() as tx:
        contact = owned_contact(tx, caller, contact_id)
        if contact.status == REVOKED:
            raise _revoked(contact)
        if contact.status == PENDING:
            tx.update_contact(contact_id, status=ACTIVE, confirmed_at=iso(now),
                              updated_at=iso(now))
            tx.insert_change(caller.account_id, "contact_confirmed", iso(now))
        contact = owned_contact(tx, caller, contact_id)
        announce_releases(tx, now, [contact])
    return contact


def update_contact(svc: Services, caller: Caller, contact_id: str,
                   changes: dict[str, Any]) -> Contact:
    now = svc.now()
    with svc.store.write() as tx:
        contact = owned_contact(tx, caller, contact_id)
        if contact.status == REVOKED:
            raise _revoked(contact)
        if "policy" in changes:
            changes.setdefault("check_in_minutes", None)
        tx.update_contact(contact_id, **changes, updated_at=iso(now))
        contact = owned_contact(tx, caller, contact_id)
        announce_releases(tx, now, [contact])
    return contact


def revoke_contact(svc: Services, caller: Caller, contact_id: str) -> Contact:
    """From now on nothing is served to the contact. Idempotent."""
    now = iso(svc.now())
    with svc.store.write() as tx:
        contact = owned_contact(tx, caller, contact_id)
        if contact.status != REVOKED:
            tx.update_contact(contact_id, status=REVOKED, revoked_at=now, updated_at=now)
            tx.insert_change(caller.account_id, "contact_revoked", now)
        return owned_contact(tx, caller, contact_id)


def owner_view(contact: Contact) -> dict[str, Any]:
    return {
        "contact_id": contact.contact_id, "invitation_id": contact.invitation_id,
        "name": contact.name, "policy": contact.policy,
        "check_in_minutes": contact.check_in_minutes, "status": contact.status,
        "age_recipient": contact.age_recipient, "contact_key": contact.contact_key,
        "proof": contact.proof, "notify_webhook": contact.notify_webhook_url is not None,
        "notify_email": contact.notify_email is not None, "accepted_at": contact.accepted_at,
        "confirmed_at": contact.confirmed_at, "revoked_at": contact.revoked_at,
    }


def self_view(contact: Contact) -> dict[str, Any]:
    return {
        "contact_id": contact.contact_id, "account_id": contact.account_id,
        "status": contact.status, "policy": contact.policy,
        "check_in_minutes": contact.check_in_minutes,
        "notify_webhook_url": contact.notify_webhook_url,
        "notify_email": contact.notify_email, "accepted_at": contact.accepted_at,
        "confirmed_at": contact.confirmed_at,
    }
