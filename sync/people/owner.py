"""The owner's device and its trusted contacts: invite, verify and pin, change, revoke.

- `make_invitation`: a fresh code (id + secret); the secret and the terms are committed to the
  local contact book first, then the invitation (never the secret) goes to the server.
- `refresh_contacts`: for each contact who accepted an invitation made here, recompute its
  proof from the secret over the keys the server reports. Only if it matches is the key pinned
  (the recorder seals to pinned recipients only) and the contact confirmed on the server. A
  mismatch means the server — or whoever sits in its place — substituted a key: the contact is
  refused, revoked on the server, reported, and nothing is ever sealed to that key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crypto.descriptor import format_time
from crypto.errors import CryptoError
from crypto.invitation import (
    ContactKeys,
    InvitationCode,
    invitation_safety_number,
    new_invitation_code,
    owner_proof,
    owner_terms,
    verify_contact_proof,
)
from sync.api import ApiClient
from sync.device.roster import owner_roster
from sync.device.state import OUTBOX, Settings, StateFolder
from sync.errors import StateError, UntrustedServer
from sync.people.book import (
    PINNED,
    REFUSED,
    WAITING,
    ContactBook,
    LocalInvitation,
    PinnedContact,
)
from sync.upload.outbox import now_rfc3339

DEFAULT_DAYS = 7


def contact_book(state: StateFolder) -> ContactBook:
    state.outbox().close()  # creates/migrates the outbox (and its `contacts` table) first
    return ContactBook(state.path / OUTBOX)


def _account_keys(api: ApiClient, settings: Settings) -> list[str]:
    """The account's device keys, after checking the server shows this device's own keys."""
    account = api.account()
    # The invitation binds the roster's devices only: a device the server lists beside them
    # (inserted by its operator) is never vouched for to a contact (sync/device/roster.py).
    keys = owner_roster(api, settings).devices
    if account.get("recovery_recipient") != settings.recovery_recipient \
            or settings.device_key not in keys:
        raise UntrustedServer("the server's account record does not hold this device's keys; "
                              "no invitation was made")
    return keys


def make_invitation(book: ContactBook, settings: Settings, api: ApiClient, name: str,
                    policy: str, minutes: int | None, now: float,
                    code: InvitationCode | None = None,
                    encounter: str | None = None) -> tuple[str, str]:
    """(code text to give the contact, expires_at); with `encounter`, a one-encounter share
    (sync/people/share.py)."""
    from datetime import UTC, datetime

    code = code or new_invitation_code()
    expires_at = format_time(datetime.fromtimestamp(now + DEFAULT_DAYS * 86400, UTC))
    try:
        terms = owner_terms(code.invitation_id, settings.server_name, settings.account_id,
                            settings.recovery_recipient, _account_keys(api, settings), policy,
                            minutes, expires_at, encounter)
    except CryptoError as exc:
        raise StateError(f"cannot make this invitation: {exc}")
    book.add_invitation(code, terms, name, now_rfc3339(now))
    api.json("POST", "/v1/contacts/invitations", auth=True, json_body={
        "invitation_id": code.invitation_id, "name": name, "policy": policy,
        "check_in_minutes": minutes, "expires_at": expires_at,
        "recovery_recipient": terms.recovery_recipient, "device_keys": list(terms.device_keys),
        "owner_proof": owner_proof(code.secret, terms), "encounter_id": encounter})
    return code.text(), expires_at


@dataclass
class ContactLine:
    """One contact as `safehold device contacts` shows it."""

    name: str
    policy: str
    check_in_minutes: int | None
    status: str  # pinned | waiting | refused | revoked | expired | other-device
    contact_id: str | None = None
    safety_number: str | None = None
    problem: str | None = None


@dataclass
class ContactsReport:
    lines: list[ContactLine] = field(default_factory=list)
    refused: list[ContactLine] = field(default_factory=list)  # substituted keys found now


def refresh_contacts(book: ContactBook, api: ApiClient) -> ContactsReport:
    """Verify and pin newly accepted contacts, follow revocations, and describe them all."""
    report = ContactsReport()
    remote = {str(c["invitation_id"]): c
              for c in api.json("GET", "/v1/contacts", auth=True)["contacts"]}
    for invitation in book.invitations():
        contact = remote.pop(invitation.invitation_id, None)
        line = _reconcile(book, api, invitation, contact, report)
        if invitation.terms.encounter is not None:  # a share's policy is not used: say so
            line.policy = f"encounter {invitation.terms.encounter} only"
        report.lines.append(line)
    for contact in remote.values():  # accepted invitations another device made
        report.lines.append(ContactLine(str(contact["name"]), str(contact["policy"]),
                                        contact.get("check_in_minutes"), "other-device",
                                        str(contact["contact_id"])))
    return report


def _reconcile(book: ContactBook, api: ApiClient, invitation: LocalInvitation,
               contact: dict[str, Any] | None, report: ContactsReport) -> ContactLine:
    terms = invitation.terms
    if contact is None:
        expired = invitation.state == WAITING and terms.expires_at < now_rfc3339()
        return ContactLine(invitation.name, terms.policy, terms.check_in_minutes,
                           "expired" if expired else invitation.state, problem=invitation.problem)
    contact_id = str(contact["contact_id"])
    if invitation.state == WAITING:
        line = _verify_and_pin(book, api, invitation, contact)
        if line.status == REFUSED:
            report.refused.append(line)
        return line
    if invitation.state == PINNED and contact["status"] == "revoked":
        book.unpin(contact_id)
        return _line(contact, "revoked", invitation.safety_number)
    if invitation.state == PINNED and contact["status"] == "pending":
        api.json("POST", f"/v1/contacts/{contact_id}/confirm", auth=True)  # a lost confirm
    if invitation.state == PINNED:
        book.update_pinned(contact_id, str(contact["name"]), str(contact["policy"]),
                           contact.get("check_in_minutes"))
    return _line(contact, invitation.state, invitation.safety_number, invitation.problem)


def _line(contact: dict[str, Any], status: str, safety: str | None,
          problem: str | None = None) -> ContactLine:
    return ContactLine(str(contact["name"]), str(contact["policy"]),
                       contact.get("check_in_minutes"), status, str(contact["contact_id"]),
                       safety, problem)


def _verify_and_pin(book: ContactBook, api: ApiClient, invitation: LocalInvitation,
                    contact: dict[str, Any]) -> ContactLine:
    contact_id = str(contact["contact_id"])
    assert invitation.secret is not None  # waiting invitations keep their secret
    try:
        keys = ContactKeys(invitation.invitation_id, str(contact["age_recipient"]),
                           str(contact["contact_key"]))
        verify_contact_proof(invitation.secret, keys, contact.get("proof"))
    except CryptoError:
        problem = ("the keys the server holds for this contact do not match the invitation "
                   "secret: they were substituted; nothing will be sealed to them")
        book.refuse(invitation.invitation_id, contact_id, problem)
        if contact["status"] != "revoked":
            api.json("DELETE", f"/v1/contacts/{contact_id}", auth=True)
        return _line(contact, REFUSED, None, problem)
    if contact["status"] == "revoked":
        book.refuse(invitation.invitation_id, contact_id, "revoked before it was verified")
        return _line(contact, "revoked", None)
    safety = invitation_safety_number(invitation.terms, keys)
    pinned = PinnedContact(contact_id, str(contact["name"]), str(contact["policy"]),
                           contact.get("check_in_minutes"), keys.age_recipient,
                           keys.contact_key, safety)
    if invitation.terms.encounter is not None:  # a one-encounter share: never sealed to
        book.pin_share(invitation.invitation_id, pinned, invitation.terms.encounter)
    else:
        book.pin(invitation.invitation_id, pinned, now_rfc3339())
    api.json("POST", f"/v1/contacts/{contact_id}/confirm", auth=True)
    return _line(contact, PINNED, safety)


def change_contact(book: ContactBook, api: ApiClient, contact_id: str,
                   changes: dict[str, Any]) -> dict[str, Any]:
    """Rename or change the policy of a contact (server first, then the local pin)."""
    updated = api.json("PATCH", f"/v1/contacts/{contact_id}", auth=True, json_body=changes)
    if book.pinned(contact_id) is not None:
        book.update_pinned(contact_id, str(updated["name"]), str(updated["policy"]),
                           updated.get("check_in_minutes"))
    return updated


def revoke_contact(book: ContactBook, api: ApiClient, contact_id: str) -> dict[str, Any]:
    """Stop sealing to the contact at once, then have the server stop serving it."""
    book.unpin(contact_id)
    return api.json("DELETE", f"/v1/contacts/{contact_id}", auth=True)
