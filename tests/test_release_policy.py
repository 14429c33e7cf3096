"""Release policies: the pure decision, and the real API deciding it at every read.

Time is injected (the app's CLOCK); no worker runs, so a release that happens here happens
because the server decided it from the stored facts and the time of the request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from contactkit import Invitee, add_contact, rfc3339
from helpers import Device, error_of, registered_device
from notifykit import AppServer

from server.store.contacts import Contact, Mark
from server.store.encounters import Encounter
from server.trust.release import notify_passed_check_ins, release_of, released

T0 = datetime(2026, 11, 28, 3, 30, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def at(delta: timedelta = timedelta()) -> str:
    moment = T0 + delta
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


CONTACT = Contact(
    contact_id="c0ffee00-0000-4000-8000-000000000001", account_id="acc", invitation_id="i",
    name="Ana", policy="check_in", check_in_minutes=10, age_recipient="age1x", contact_key="k",
    proof="p", status="active", notify_webhook_url=None, notify_email=None,
    webhook_secret=None, accepted_at=at(-timedelta(days=1)), confirmed_at=at(), revoked_at=None,
    updated_at=at())
ENCOUNTER = Encounter("e", "acc", started_at=at(), created_at=at(), created_by="d", log_size=0)


def mark(kind: str, delta: timedelta) -> Mark:
    return Mark("e", kind, at(delta), "d")


# -- the decision ------------------------------------------------------------------------------


def test_check_in_releases_at_the_deadline_and_not_a_millisecond_before() -> None:
    deadline = T0 + timedelta(minutes=10)
    assert released(CONTACT, ENCOUNTER, [], deadline - MS) is None
    found = released(CONTACT, ENCOUNTER, [], deadline)
    assert found is not None and (found.at, found.reason) == (deadline, "check_in")


def test_a_safe_mark_before_the_deadline_prevents_the_release_for_good() -> None:
    in_time = [mark("safe", timedelta(minutes=10) - MS)]
    assert release_of(CONTACT, ENCOUNTER, in_time) is None
    assert released(CONTACT, ENCOUNTER, in_time, T0 + timedelta(days=365)) is None
    too_late = [mark("safe", timedelta(minutes=10))]
    assert released(CONTACT, ENCOUNTER, too_late, T0 + timedelta(minutes=10)) is not None


def test_an_alert_releases_check_in_and_on_alert_contacts_at_once() -> None:
    alerts = [mark("safe", timedelta(minutes=1)), mark("alert", timedelta(minutes=3)),
              mark("alert", timedelta(minutes=5))]
    for policy in ("check_in", "on_alert"):
        found = release_of(replace(CONTACT, policy=policy), ENCOUNTER, alerts)
        assert found is not None and (found.at, found.reason) == (T0 + timedelta(minutes=3),
                                                                  "alert")
    assert release_of(replace(CONTACT, policy="on_alert", check_in_minutes=None), ENCOUNTER,
                      [mark("safe", timedelta(0))]) is None


def test_immediate_releases_from_creation() -> None:
    found = release_of(replace(CONTACT, policy="immediate"), ENCOUNTER, [])
    assert found is not None and (found.at, found.reason) == (T0, "immediate")


def test_a_late_phone_clock_cannot_postpone_the_deadline() -> None:
    late_phone = replace(ENCOUNTER, started_at=at(timedelta(hours=5)))
    found = release_of(CONTACT, late_phone, [])
    assert found is not None and found.at == T0 + timedelta(minutes=10)  # from created_at


def test_nothing_for_unconfirmed_revoked_foreign_or_later_contacts() -> None:
    for contact in (replace(CONTACT, status="pending"), replace(CONTACT, status="revoked"),
                    replace(CONTACT, account_id="someone else"),
                    replace(CONTACT, accepted_at=at(MS))):  # joined after the encounter
        assert release_of(replace(contact, policy="immediate"), ENCOUNTER,
                          [mark("alert", timedelta(0))]) is None


# -- the API, with the clock moved by the test ---------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    # Logins made at the start must outlive the hours the tests move the clock by.
    app_server = AppServer(tmp_path / "data", settings={"TOKEN_TTL_SECONDS": 30 * 86400}).start()
    yield app_server
    app_server.stop()


def readable(invitee: Invitee, encounter: str) -> bool:
    response = invitee.call("GET", f"/v1/encounters/{encounter}/streams/audio/chunks/0")
    if response.status_code == 404:
        assert error_of(response) == (404, "not_found")
        return False
    assert response.status_code == 200, response.text
    return True


def recorded(owner: Device, server: AppServer) -> str:
    encounter = owner.new_encounter(started_at=rfc3339(server.clock.now))
    owner.upload(encounter, "audio", 0)
    return encounter


def test_check_in_over_http_releases_exactly_when_the_time_passes(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "check_in", 5, now=server.clock.now)
    start = server.clock.now
    encounter = recorded(owner, server)
    server.clock.now = start + 5 * 60 - 0.001
    assert not readable(contact, encounter)
    assert contact.call("GET", "/v1/released").json()["encounters"] == []
    server.clock.now = start + 5 * 60
    assert readable(contact, encounter)
    listed = contact.call("GET", "/v1/released").json()["encounters"]
    assert [(e["encounter_id"], e["reason"], e["released_at"]) for e in listed] == [
        (encounter, "check_in", rfc3339(start + 300))]


def test_safe_in_time_keeps_it_closed_until_an_alert(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "check_in", 5, now=server.clock.now)
    encounter = recorded(owner, server)
    server.clock.advance(4 * 60)
    assert owner.call("POST", f"/v1/encounters/{encounter}/safe").status_code == 201
    server.clock.advance(24 * 3600)
    assert not readable(contact, encounter)
    assert owner.call("POST", f"/v1/encounters/{encounter}/alert").status_code == 201
    assert readable(contact, encounter)


def test_policy_changes_and_revocation_take_effect_at_the_next_read(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "on_alert", now=server.clock.now)
    encounter = recorded(owner, server)
    assert not readable(contact, encounter)
    path = f"/v1/contacts/{contact.contact_id}"
    changed = owner.call("PATCH", path, json={"policy": "immediate"})
    assert changed.status_code == 200 and changed.json()["policy"] == "immediate"
    assert readable(contact, encounter)
    assert owner.call("DELETE", path).json()["status"] == "revoked"
    assert not readable(contact, encounter)
    assert contact.call("GET", "/v1/released").json()["encounters"] == []
    assert error_of(owner.call("PATCH", path, json={"name": "x"})) == (409, "contact_revoked")
    assert error_of(owner.call("POST", path + "/confirm")) == (409, "contact_revoked")


def test_check_in_needs_its_minutes(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "on_alert", now=server.clock.now)
    path = f"/v1/contacts/{contact.contact_id}"
    assert error_of(owner.call("PATCH", path, json={"policy": "check_in"})) == (
        422, "invalid_request")
    assert error_of(owner.call("PATCH", path, json={"check_in_minutes": 5})) == (
        422, "invalid_request")
    done = owner.call("PATCH", path, json={"policy": "check_in", "check_in_minutes": 5})
    assert (done.json()["policy"], done.json()["check_in_minutes"]) == ("check_in", 5)


def test_the_worker_hook_announces_each_passed_deadline_once(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "check_in", 5, now=server.clock.now)
    encounter = recorded(owner, server)
    store = server.app.extensions["safehold"].store
    with store.write() as tx:
        assert notify_passed_check_ins(tx, server.clock.now + 299) == 0
    with store.write() as tx:
        assert notify_passed_check_ins(tx, server.clock.now + 300) == 1
    with store.write() as tx:
        assert notify_passed_check_ins(tx, server.clock.now + 900) == 0
        sent = tx.notifications_for(str(contact.contact_id))
    assert [(n.kind, n.encounter_id) for n in sent] == [("released", encounter)]
    server.clock.advance(900)
    feed = contact.call("GET", "/v1/changes").json()["changes"]
    assert [c["kind"] for c in feed if c["encounter_id"] == encounter].count("released") == 1
