"""Webhook notifications reach a real HTTP receiver on loopback, signed, without content, once.

The app runs in-process behind a real werkzeug HTTP server (so the test, the API and the worker
share one injected clock); the worker is the real one, run a pass at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest
from contactkit import Invitee, add_contact
from helpers import Device, registered_device
from notifykit import AppServer, Received, WebhookReceiver

SECRET_MEDIA = b"the words spoken during the stop " * 4
MINUTE = 60.0


@pytest.fixture
def server(clocked_server: AppServer) -> AppServer:
    return clocked_server


def check_signature(message: Received, secret: str) -> dict[str, object]:
    """What a receiver does: recompute the HMAC over "<t>.<raw body>" and compare."""
    header = message.headers["Safehold-Signature"]
    found = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert found, header
    expected = hmac.new(secret.encode(), found[1].encode() + b"." + message.body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(found[2], expected)
    body: dict[str, object] = json.loads(message.body)
    assert message.headers["Safehold-Notification-Id"] == body["id"]
    return body


def recording(owner: Device) -> str:
    encounter = owner.new_encounter()
    owner.upload(encounter, "audio", 0, payload=SECRET_MEDIA)
    owner.upload(encounter, "log", 0, final=True, payload=b'{"note": "badge 4711"}')
    return encounter


def test_check_in_release_is_posted_once_with_a_valid_signature(
        server: AppServer, receiver: WebhookReceiver) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "check_in", 10, now=server.clock.now,
                          notify_webhook_url=receiver.url)
    encounter = recording(owner)
    worker = server.worker()

    worker.run_once()
    assert receiver.received == []  # the deadline has not passed
    server.clock.advance(10 * MINUTE + 1)
    worker.run_once()

    [message] = receiver.received
    assert message.path == "/hooks/safehold"
    assert contact.webhook_secret
    body = check_signature(message, contact.webhook_secret)
    assert body["kind"] == "released" and body["encounter_id"] == encounter
    assert body["details"] == {"reason": "check_in"}
    assert body["server"] == server.name
    assert body["link"] == f"{server.url}/v1/encounters/{encounter}"
    assert body["page"] == f"{server.url}/contact"  # for people: a page, not the API
    assert set(body) == {"format", "id", "kind", "encounter_id", "at", "server", "link",
                         "page", "details", "checkpoint"}
    # the log's latest signed checkpoint, so the contact holds a copy outside the server
    served = contact.call("GET", f"/v1/encounters/{encounter}/log/checkpoint").json()
    assert body["checkpoint"] == served["checkpoint"]
    assert body["checkpoint"].startswith(f"{server.name}/safehold/encounter/{encounter}\n")
    assert b"badge" not in message.body and b"words spoken" not in message.body
    # The link works for the contact, whose release has now happened.
    assert contact.call("GET", f"/v1/encounters/{encounter}").status_code == 200

    for _ in range(3):  # later passes, days later: the release is never announced again
        server.clock.advance(24 * 3600)
        worker.run_once()
    assert len(receiver.received) == 1


def test_a_signature_made_with_another_secret_does_not_verify(
        server: AppServer, receiver: WebhookReceiver) -> None:
    owner = registered_device(server.url, server.name)
    first = add_contact(owner, "immediate", now=server.clock.now, notify_webhook_url=receiver.url)
    second = add_contact(owner, "immediate", name="Bo", now=server.clock.now,
                         notify_webhook_url=receiver.url)
    recording(owner)
    server.worker().run_once()
    assert len(receiver.received) == 2
    assert first.webhook_secret and second.webhook_secret
    assert first.webhook_secret != second.webhook_secret
    verified = []
    for message in receiver.received:
        for contact in (first, second):
            try:
                check_signature(message, str(contact.webhook_secret))
                verified.append(contact.contact_id)
            except AssertionError:
                pass
    assert sorted(verified) == sorted([first.contact_id, second.contact_id])  # one key each


def test_receiver_down_gets_it_later_exactly_once(server: AppServer) -> None:
    receiver = WebhookReceiver()  # port reserved, nothing listening yet
    owner = registered_device(server.url, server.name)
    contact: Invitee = add_contact(owner, "immediate", now=server.clock.now,
                                   notify_webhook_url=receiver.url)
    encounter = recording(owner)
    worker = server.worker()

    assert worker.run_once().failed == 1  # connection refused
    assert worker.run_once().failed == 0  # not due again before the backoff
    server.clock.advance(3600)
    assert worker.run_once().failed == 1  # still down: the next wait is longer
    receiver.start()
    try:
        worker.run_once()
        assert receiver.received == []  # the backoff still runs
        server.clock.advance(3600)
        assert worker.run_once().delivered == 1
        for _ in range(5):
            server.clock.advance(6 * 3600)
            worker.run_once()
        [message] = receiver.received
        body = check_signature(message, str(contact.webhook_secret))
        assert (body["kind"], body["encounter_id"]) == ("released", encounter)
    finally:
        receiver.stop()


def test_error_answers_are_retried_with_the_same_id(server: AppServer,
                                                   receiver: WebhookReceiver) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "on_alert", now=server.clock.now,
                          notify_webhook_url=receiver.url)
    encounter = recording(owner)
    assert owner.call("POST", f"/v1/encounters/{encounter}/alert").status_code == 201
    worker = server.worker()
    receiver.status = 503
    worker.run_once()
    refused = {json.loads(m.body)["kind"]: json.loads(m.body)["id"] for m in receiver.received}
    assert set(refused) == {"released", "alert"}
    receiver.status = 200
    server.clock.advance(3600)
    worker.run_once()
    server.clock.advance(3600)
    worker.run_once()
    assert len(receiver.received) == 4  # each once refused, once accepted, then never again
    for message in receiver.received[2:]:
        body = check_signature(message, str(contact.webhook_secret))
        assert refused[str(body["kind"])] == body["id"]  # a retry is the same message


def test_private_targets_are_refused_unless_allowed(server: AppServer,
                                                    receiver: WebhookReceiver) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "immediate", now=server.clock.now,
                          notify_webhook_url=receiver.url)
    recording(owner)
    strict = server.worker(WEBHOOK_ALLOW_PRIVATE=False)
    assert strict.run_once().failed == 1
    for _ in range(3):
        server.clock.advance(24 * 3600)
        strict.run_once()
    assert receiver.received == []  # the loopback address was never contacted
    with strict.store.read() as tx:
        [notification] = tx.notifications_for(str(contact.contact_id))
        [delivery] = tx.deliveries_of(notification.notification_id)
    assert delivery.state == "failed" and "non-public address 127.0.0.1" in str(
        delivery.last_error)


def test_a_revoked_contact_is_sent_nothing_more(server: AppServer,
                                               receiver: WebhookReceiver) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "immediate", now=server.clock.now,
                          notify_webhook_url=receiver.url)
    recording(owner)  # queues `released` for the contact
    assert owner.call("DELETE", f"/v1/contacts/{contact.contact_id}").status_code == 200
    worker = server.worker()
    for _ in range(3):
        worker.run_once()
        server.clock.advance(24 * 3600)
    assert receiver.received == []
