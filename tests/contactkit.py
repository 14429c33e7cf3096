"""Trusted contacts over real HTTP, with requests and crypto/ only (no sync/ code).

- `Invitee`: a contact's app: its age identity and Ed25519 key; looks at an invitation,
  accepts it with the proof made from the code's secret, logs in as a contact.
- `invite(owner, ...)`: what the owner's device does to make an invitation code.
- `add_contact(owner, policy, ...)`: the whole dance (invite, accept, check the proof, confirm)
  for tests that just need a confirmed contact (also used by the notification tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests
from helpers import Device, b64

from crypto import age
from crypto.descriptor import format_time
from crypto.invitation import (
    ContactKeys,
    InvitationCode,
    OwnerTerms,
    contact_proof,
    new_invitation_code,
    owner_proof,
    owner_terms,
    verify_contact_proof,
)
from crypto.signing import generate_signing_key, sign_raw, verifier_key
from schemas.statements import accept_invitation_statement, contact_login_statement

WEEK = 7 * 24 * 3600


def rfc3339(unix_time: float) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(unix_time, UTC))


@dataclass
class Invitation:
    code: InvitationCode
    terms: OwnerTerms
    response: requests.Response


def invite(owner: Device, policy: str = "immediate", minutes: int | None = None,
           name: str = "Ana", now: float | None = None,
           code: InvitationCode | None = None, encounter: str | None = None) -> Invitation:
    """Make a code, commit to the owner's keys and terms, and store the invitation (with
    `encounter`, a one-encounter share)."""
    code = code or new_invitation_code()
    account = owner.call("GET", "/v1/account").json()
    terms = owner_terms(code.invitation_id, owner.server_name, owner.account_id,
                        account["recovery_recipient"],
                        [d["device_key"] for d in account["devices"]], policy, minutes,
                        rfc3339((now if now is not None else time.time()) + WEEK), encounter)
    response = owner.call("POST", "/v1/contacts/invitations", json=invitation_body(
        code, terms, name))
    return Invitation(code, terms, response)


def invitation_body(code: InvitationCode, terms: OwnerTerms, name: str) -> dict[str, Any]:
    return {"invitation_id": code.invitation_id, "name": name, "policy": terms.policy,
            "check_in_minutes": terms.check_in_minutes, "expires_at": terms.expires_at,
            "recovery_recipient": terms.recovery_recipient,
            "device_keys": list(terms.device_keys), "owner_proof": owner_proof(code.secret,
                                                                               terms),
            **({"encounter_id": terms.encounter} if terms.encounter else {})}


@dataclass
class Invitee:
    url: str
    server_name: str
    identity: str = field(default_factory=age.generate_identity)
    signing_key: str = field(default_factory=lambda: generate_signing_key("contact"))
    contact_id: str | None = None
    token: str | None = None
    webhook_secret: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def recipient(self) -> str:
        return age.recipient_of(self.identity)

    @property
    def contact_key(self) -> str:
        return verifier_key(self.signing_key)

    def keys(self, invitation_id: str) -> ContactKeys:
        return ContactKeys(invitation_id, self.recipient, self.contact_key)

    def terms(self, invitation_id: str) -> requests.Response:
        return self.session.get(f"{self.url}/v1/invitations/{invitation_id}", timeout=10)

    def accept_body(self, code: InvitationCode, **extra: Any) -> dict[str, Any]:
        statement = accept_invitation_statement(self.server_name, code.invitation_id,
                                                self.recipient, self.contact_key)
        return {"age_recipient": self.recipient, "contact_key": self.contact_key,
                "proof": contact_proof(code.secret, self.keys(code.invitation_id)),
                "signature": b64(sign_raw(statement, self.signing_key)), **extra}

    def accept(self, code: InvitationCode, **extra: Any) -> requests.Response:
        response = self.session.post(f"{self.url}/v1/invitations/{code.invitation_id}/accept",
                                     json=self.accept_body(code, **extra), timeout=10)
        if response.status_code in (200, 201):
            self.contact_id = response.json()["contact_id"]
            self.webhook_secret = response.json()["webhook_secret"]
        return response

    def login(self) -> Invitee:
        challenge = self.session.post(f"{self.url}/v1/auth/challenge", timeout=10,
                                      json={"contact_id": self.contact_id}).json()["challenge"]
        statement = contact_login_statement(self.server_name, str(self.contact_id), challenge)
        response = self.session.post(f"{self.url}/v1/auth/token", timeout=10, json={
            "contact_id": self.contact_id, "challenge": challenge,
            "signature": b64(sign_raw(statement, self.signing_key))})
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        return self

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**({"Authorization": f"Bearer {self.token}"} if self.token else {}),
                   **kwargs.pop("headers", {})}
        return self.session.request(method, self.url + path, headers=headers, timeout=30,
                                    **kwargs)


def confirm_checked(owner: Device, invitation: Invitation, contact_id: str) -> None:
    """What the owner's device does: check the proof with its secret, then confirm."""
    listed = {c["contact_id"]: c for c in owner.call("GET", "/v1/contacts").json()["contacts"]}
    row = listed[contact_id]
    keys = ContactKeys(invitation.code.invitation_id, row["age_recipient"], row["contact_key"])
    verify_contact_proof(invitation.code.secret, keys, row["proof"])
    response = owner.call("POST", f"/v1/contacts/{contact_id}/confirm")
    assert response.status_code == 200, response.text


def add_contact(owner: Device, policy: str = "immediate", minutes: int | None = None,
                name: str = "Ana", confirm: bool = True, now: float | None = None,
                encounter: str | None = None, **accept_extra: Any) -> Invitee:
    """A contact of `owner`, accepted (and confirmed unless told not to), logged in; with
    `encounter`, the recipient of a one-encounter share of it."""
    invitation = invite(owner, policy, minutes, name, now, encounter=encounter)
    assert invitation.response.status_code == 201, invitation.response.text
    invitee = Invitee(owner.url, owner.server_name)
    accepted = invitee.accept(invitation.code, **accept_extra)
    assert accepted.status_code == 201, accepted.text
    if confirm:
        confirm_checked(owner, invitation, str(invitee.contact_id))
    return invitee.login()
