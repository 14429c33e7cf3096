"""A trusted contact's side: accept an invitation, log in, list what was released.

Joining checks the owner's proof (made from the code's secret) over the owner's keys and terms
the server shows, before the contact's own keys are sent; a server that changed either is
refused. The contact's proof, made from the same secret, lets the owner's device check the keys
in turn. Both sides can then compare the same safety number out of band.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crypto.errors import CryptoError, MalformedError
from crypto.invitation import (
    ContactKeys,
    InvitationCode,
    ProofMismatch,
    contact_proof,
    invitation_safety_number,
    owner_terms,
    verify_owner_proof,
)
from crypto.signing import sign_raw
from schemas.statements import accept_invitation_statement, contact_login_statement
from sync.api import DEFAULT_TIMEOUT, ApiClient, RateWait
from sync.device.account import pinned_server
from sync.errors import NotAvailable, StateError, UntrustedServer
from sync.people.contact_state import ContactState, Membership


@dataclass(frozen=True)
class Notify:
    webhook_url: str | None = None
    email: str | None = None


def parse_code(text: str) -> InvitationCode:
    try:
        return InvitationCode.parse(text)
    except MalformedError as exc:
        raise StateError(f"that is not an invitation code ({exc}); it looks like "
                         "<22 characters>.<43 characters>")


def _proven_terms(api: ApiClient, code: InvitationCode, server_name: str) -> Any:
    shown = api.json("GET", f"/v1/invitations/{code.invitation_id}")
    try:
        terms = owner_terms(code.invitation_id, str(shown["server"]), str(shown["account_id"]),
                            str(shown["recovery_recipient"]), list(shown["device_keys"]),
                            str(shown["policy"]), shown.get("check_in_minutes"),
                            str(shown["expires_at"]), shown.get("encounter_id"))
        verify_owner_proof(code.secret, terms, shown.get("owner_proof"))
    except (ProofMismatch, CryptoError, KeyError, TypeError) as exc:
        raise UntrustedServer(f"the invitation the server shows does not match the code's "
                              f"secret ({exc}): the owner's keys or terms were changed; "
                              "nothing was accepted")
    if terms.server != server_name:
        raise UntrustedServer(f"the invitation was made for server {terms.server}, not "
                              f"{server_name}")
    return terms


def join(state: ContactState, url: str, code_text: str, age_recipient: str,
         identity_file: str, label: str | None = None, notify: Notify = Notify(),
         timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> Membership:
    """Accept the invitation with this contact's keys; safe to repeat with the same code."""
    code = parse_code(code_text)
    api = ApiClient(url, timeout=timeout)
    server_name, server_key = pinned_server(api, url)
    terms = _proven_terms(api, code, server_name)
    signing_key = state.signing_key()
    keys = ContactKeys(code.invitation_id, age_recipient, state.contact_key())
    statement = accept_invitation_statement(server_name, code.invitation_id, age_recipient,
                                            keys.contact_key)
    body: dict[str, Any] = {
        "age_recipient": age_recipient, "contact_key": keys.contact_key,
        "proof": contact_proof(code.secret, keys),
        "signature": base64.b64encode(sign_raw(statement, signing_key)).decode("ascii")}
    if notify.webhook_url:
        body["notify_webhook_url"] = notify.webhook_url
    if notify.email:
        body["notify_email"] = notify.email
    accepted = api.json("POST", f"/v1/invitations/{code.invitation_id}/accept", json_body=body)
    membership = Membership(
        server_url=api.base_url, server_name=server_name, server_key=server_key,
        invitation_id=code.invitation_id, contact_id=str(accepted["contact_id"]),
        label=label or terms.account_id[:8], account_id=terms.account_id,
        owner_recipient=terms.recovery_recipient, owner_device_keys=list(terms.device_keys),
        policy=terms.policy, check_in_minutes=terms.check_in_minutes,
        age_recipient=age_recipient, identity_file=identity_file,
        safety_number=invitation_safety_number(terms, keys),
        accepted_at=str(accepted["accepted_at"]), webhook_secret=accepted.get("webhook_secret"),
        encounter=terms.encounter)
    state.save_membership(membership)
    return membership


def contact_login(contact_id: str, signing_key: str,
                  server_name: str) -> Callable[[ApiClient], str]:
    """A token provider: answer a fresh challenge with the contact key's signature."""

    def provide(api: ApiClient) -> str:
        challenge = str(api.json("POST", "/v1/auth/challenge",
                                 json_body={"contact_id": contact_id})["challenge"])
        signature = sign_raw(contact_login_statement(server_name, contact_id, challenge),
                             signing_key)
        return str(api.json("POST", "/v1/auth/token", json_body={
            "contact_id": contact_id, "challenge": challenge,
            "signature": base64.b64encode(signature).decode("ascii")})["token"])

    return provide


def contact_client(state: ContactState, membership: Membership,
                   timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                   rate_wait: RateWait | None = None) -> ApiClient:
    """An API client that logs in as this membership's contact by itself when needed (and,
    with `rate_wait`, waits out "too many requests")."""
    login = contact_login(membership.contact_id, state.signing_key(), membership.server_name)
    api = ApiClient(membership.server_url, token_provider=login, timeout=timeout)
    api.rate_wait = rate_wait
    return api


@dataclass
class MembershipView:
    membership: Membership
    status: str  # pending | active | revoked
    policy: str
    check_in_minutes: int | None
    encounters: list[dict[str, Any]]


def released_to_me(state: ContactState, membership: Membership,
                   timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> MembershipView:
    api = contact_client(state, membership, timeout)
    me = api.json("GET", "/v1/contact", auth=True)
    encounters = list(api.json("GET", "/v1/released", auth=True)["encounters"])
    return MembershipView(membership, str(me["status"]), str(me["policy"]),
                          me.get("check_in_minutes"), encounters)


def membership_for(state: ContactState, encounter_id: str,
                   timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                   rate_wait: RateWait | None = None) -> tuple[Membership, ApiClient]:
    """The membership (and a logged-in client) through which `encounter_id` was released."""
    for membership in state.require_memberships():
        api = contact_client(state, membership, timeout, rate_wait)
        released = api.json("GET", "/v1/released", auth=True)["encounters"]
        if any(e["encounter_id"] == encounter_id for e in released):
            return membership, api
    raise NotAvailable(f"encounter {encounter_id} is not available to this contact: there is "
                       "no such encounter, or it has not been released to you; check the id "
                       "with `safehold contact list`")
