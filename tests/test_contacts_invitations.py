"""The invitation protocol against a real server: proofs, idempotency, refusals, substitution.

A key the server swaps in the middle of an invitation is simulated the bluntest way: the test
rewrites the stored row in the server's SQLite file, as a malicious operator could.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from contactkit import Invitee, add_contact, confirm_checked, invitation_body, invite
from helpers import Device, ServerProcess, error_of, registered_device
from notifykit import AppServer

from crypto import age
from crypto.invitation import (
    ContactKeys,
    InvitationCode,
    invitation_safety_number,
    new_invitation_code,
    owner_terms,
    verify_owner_proof,
)
from crypto.signing import generate_signing_key, verifier_key
from sync.device.account import client_for, register
from sync.device.state import StateFolder
from sync.errors import UntrustedServer
from sync.people.client import join
from sync.people.contact_state import ContactState
from sync.people.owner import contact_book, make_invitation, refresh_contacts


def server_db(server: ServerProcess) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "safehold.sqlite3", timeout=30)


def contacts_of(owner: Device) -> list[dict[str, object]]:
    return list(owner.call("GET", "/v1/contacts").json()["contacts"])


def test_invitation_round_trip(device: Device, live_server: ServerProcess) -> None:
    invitation = invite(device, "check_in", 15, name="Mom")
    assert invitation.response.status_code == 201
    invitee = Invitee(live_server.url, live_server.name)
    shown = invitee.terms(invitation.code.invitation_id).json()
    assert shown["accepted"] is False
    terms = owner_terms(shown["invitation_id"], shown["server"], shown["account_id"],
                        shown["recovery_recipient"], shown["device_keys"], shown["policy"],
                        shown["check_in_minutes"], shown["expires_at"])
    verify_owner_proof(invitation.code.secret, terms, shown["owner_proof"])
    assert terms == invitation.terms

    hook = "http://127.0.0.1:9/hook"
    first = invitee.accept(invitation.code, notify_webhook_url=hook)
    assert first.status_code == 201 and first.json()["status"] == "pending"
    assert len(first.json()["webhook_secret"]) >= 40
    again = invitee.accept(invitation.code, notify_webhook_url=hook)
    assert again.status_code == 200 and again.json() == first.json()
    assert invitee.terms(invitation.code.invitation_id).json()["accepted"] is True

    assert [c["status"] for c in contacts_of(device)] == ["pending"]
    confirm_checked(device, invitation, str(invitee.contact_id))
    (row,) = contacts_of(device)
    assert (row["status"], row["name"], row["policy"], row["check_in_minutes"]) == (
        "active", "Mom", "check_in", 15)
    assert row["notify_webhook"] is True and row["notify_email"] is False
    me = invitee.login().call("GET", "/v1/contact").json()
    assert (me["status"], me["account_id"], me["notify_webhook_url"]) == (
        "active", device.account_id, hook)
    # Both sides compute the same safety number from what they each hold.
    keys = ContactKeys(invitation.code.invitation_id, str(row["age_recipient"]),
                       str(row["contact_key"]))
    assert invitation_safety_number(invitation.terms, keys) == invitation_safety_number(
        terms, invitee.keys(invitation.code.invitation_id))


def test_invitations_refuse_what_the_account_does_not_hold(device: Device,
                                                           other_device: Device) -> None:
    base = invite(device)
    assert base.response.status_code == 201
    body = invitation_body(base.code, base.terms, "Ana")
    assert device.call("POST", "/v1/contacts/invitations", json=body).status_code == 200
    taken = device.call("POST", "/v1/contacts/invitations", json={**body, "name": "Bo"})
    assert error_of(taken) == (409, "invitation_exists")
    assert error_of(invite(other_device, code=base.code).response) == (
        409, "invitation_exists")  # the id is taken, whoever asks
    cases = {
        "recovery_recipient": {"recovery_recipient": other_device.recovery_recipient},
        "device_keys": {"device_keys": [other_device.device_key]},
        "past": {"expires_at": "2020-01-01T00:00:00.000Z"},
        "at most 30 days": {"expires_at": "2099-01-01T00:00:00.000Z"},
    }
    for words, change in cases.items():
        fresh = {**body, "invitation_id": new_invitation_code().invitation_id, **change}
        refused = device.call("POST", "/v1/contacts/invitations", json=fresh)
        assert error_of(refused) == (400, "bad_invitation"), refused.text
        assert words in refused.json()["error"]["message"]
    missing_minutes = {**body, "invitation_id": new_invitation_code().invitation_id,
                       "policy": "check_in"}
    assert error_of(device.call("POST", "/v1/contacts/invitations", json=missing_minutes)) == (
        422, "invalid_request")
    assert len(contacts_of(device)) == 0


def test_accepting_refuses_bad_requests_and_keeps_the_first_keys(
        device: Device, live_server: ServerProcess) -> None:
    invitation = invite(device)
    invitee = Invitee(live_server.url, live_server.name)
    nowhere = InvitationCode(new_invitation_code().invitation_id, invitation.code.secret)
    unknown = invitee.accept(nowhere)
    assert error_of(unknown) == (404, "not_found")
    forged = invitee.accept_body(invitation.code)
    forged["signature"] = forged["signature"][:-6] + ("AAAA==" if not forged["signature"]
                                                      .endswith("AAAA==") else "BBBB==")
    response = invitee.session.post(
        f"{live_server.url}/v1/invitations/{invitation.code.invitation_id}/accept", json=forged,
        timeout=10)
    assert error_of(response) == (400, "bad_signature")
    assert contacts_of(device) == []
    assert invitee.accept(invitation.code).status_code == 201
    intruder = Invitee(live_server.url, live_server.name)
    assert error_of(intruder.accept(invitation.code)) == (409, "invitation_used")
    (row,) = contacts_of(device)
    assert (row["age_recipient"], row["contact_key"]) == (invitee.recipient,
                                                          invitee.contact_key)


def test_expired_invitations_can_no_longer_be_seen_or_accepted(tmp_path: Path) -> None:
    server = AppServer(tmp_path / "data").start()
    try:
        owner = registered_device(server.url, server.name)
        invitation = invite(owner, now=server.clock.now)
        server.clock.advance(8 * 86400)  # invitations made by contactkit last a week
        invitee = Invitee(server.url, server.name)
        assert error_of(invitee.terms(invitation.code.invitation_id)) == (
            410, "invitation_expired")
        assert error_of(invitee.accept(invitation.code)) == (410, "invitation_expired")
    finally:
        server.stop()


@pytest.fixture
def phone(live_server: ServerProcess, tmp_path: Path) -> Iterator[StateFolder]:
    state = StateFolder(tmp_path / "phone")
    register(state, live_server.url)
    yield state


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_a_key_substituted_by_the_server_is_refused_by_the_device(
        phone: StateFolder, live_server: ServerProcess, tmp_path: Path) -> None:
    settings = phone.require_registered()
    api = client_for(phone, settings)
    book = contact_book(phone)
    code, _ = make_invitation(book, settings, api, "Mom", "immediate", None, _now())
    identity = age.generate_identity()
    contact = ContactState(tmp_path / "mom")
    join(contact, live_server.url, code, age.recipient_of(identity), "mom.key")
    # The operator swaps in keys of its own, keeping the contact's proof.
    attacker = age.generate_identity()
    with server_db(live_server) as db:
        db.execute("UPDATE contacts SET age_recipient = ?, contact_key = ? WHERE account_id = ?",
                   [age.recipient_of(attacker), verifier_key(generate_signing_key("evil")),
                    settings.account_id])
    report = refresh_contacts(book, api)
    assert [line.name for line in report.refused] == ["Mom"]
    assert "substituted" in str(report.refused[0].problem)
    assert phone.outbox().contact_recipients() == []  # nothing will be sealed to it
    (row,) = api.json("GET", "/v1/contacts", auth=True)["contacts"]
    assert row["status"] == "revoked"
    again = refresh_contacts(book, api)  # stays refused; never pinned later
    assert again.refused == [] and [line.status for line in again.lines] == ["refused"]
    assert phone.outbox().contact_recipients() == []
    book.close()


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_owner_keys_changed_by_the_server_stop_the_contact_from_joining(
        phone: StateFolder, live_server: ServerProcess, tmp_path: Path) -> None:
    settings = phone.require_registered()
    api = client_for(phone, settings)
    book = contact_book(phone)
    code, _ = make_invitation(book, settings, api, "Mom", "immediate", None, _now())
    book.close()
    fake_recovery = age.recipient_of(age.generate_identity())
    with server_db(live_server) as db:
        db.execute("UPDATE contact_invitations SET owner_recipient = ? WHERE account_id = ?",
                   [fake_recovery, settings.account_id])
    contact = ContactState(tmp_path / "mom")
    with pytest.raises(UntrustedServer, match="changed"):
        join(contact, live_server.url, code, age.recipient_of(age.generate_identity()), "k")
    assert api.json("GET", "/v1/contacts", auth=True)["contacts"] == []
    assert contact.memberships() == []


def test_a_verified_contact_is_pinned_with_the_safety_number_both_sides_show(
        phone: StateFolder, live_server: ServerProcess, tmp_path: Path) -> None:
    settings = phone.require_registered()
    api = client_for(phone, settings)
    book = contact_book(phone)
    code, _ = make_invitation(book, settings, api, "Mom", "on_alert", None, _now())
    identity = age.generate_identity()
    membership = join(ContactState(tmp_path / "mom"), live_server.url, code,
                      age.recipient_of(identity), "mom.key", label="Maria")
    (line,) = refresh_contacts(book, api).lines
    assert (line.status, line.safety_number) == ("pinned", membership.safety_number)
    assert phone.outbox().contact_recipients() == [age.recipient_of(identity)]
    (row,) = api.json("GET", "/v1/contacts", auth=True)["contacts"]
    assert row["status"] == "active"
    book.close()


def test_add_contact_helper_gives_a_logged_in_active_contact(device: Device) -> None:
    contact = add_contact(device, "on_alert", name="Helper")
    assert contact.call("GET", "/v1/contact").json()["status"] == "active"


def _now() -> float:
    import time

    return time.time()
