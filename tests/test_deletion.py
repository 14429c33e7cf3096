"""Deletion may be coerced: it is delayed, announced to contacts, stoppable by a hold; when it
does go through, the blobs leave the blob store and everyone sees the encounter gone.

Time is injected (the app's and the worker's clock); the API is served over real HTTP.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from contactkit import Invitee, add_contact
from helpers import Device, chunk_path, error_of, evidence, registered_device
from notifykit import AppServer, WebhookReceiver

from crypto.checkpoint import open_checkpoint
from server.blobs.store import LocalBlobStore, chunk_key
from server.config import complete_config

HOUR = 3600.0
DELAY = 72 * HOUR


@pytest.fixture
def server(clocked_server: AppServer) -> AppServer:
    return clocked_server


def blob_store(server: AppServer) -> LocalBlobStore:
    """The server's blob store, opened independently of the server."""
    return LocalBlobStore(server.data_dir / "blobs")


def recorded(owner: Device, chunks: int = 3) -> tuple[str, list[str]]:
    encounter = owner.new_encounter()
    keys = []
    for seq in range(chunks):
        owner.upload(encounter, "audio", seq, final=seq == chunks - 1)
        keys.append(chunk_key(encounter, "audio", seq))
    return encounter, keys


def kinds_received(receiver: WebhookReceiver, contact: Invitee) -> list[tuple[str, object]]:
    """(kind, details) of the webhooks that were signed for this contact's secret."""
    import hashlib
    import hmac

    found = []
    for message in receiver.received:
        stamp, mac = message.headers["Safehold-Signature"].split(",")
        expected = hmac.new(str(contact.webhook_secret).encode(),
                            stamp[2:].encode() + b"." + message.body, hashlib.sha256)
        if hmac.compare_digest(mac[3:], expected.hexdigest()):
            body = json.loads(message.body)
            found.append((body["kind"], body.get("details")))
    return found


def test_coerced_deletion_is_visible_to_contacts_and_a_hold_stops_it(
        server: AppServer, receiver: WebhookReceiver) -> None:
    owner = registered_device(server.url, server.name)
    family = add_contact(owner, "immediate", name="Family", now=server.clock.now,
                         notify_webhook_url=receiver.url)
    lawyer = add_contact(owner, "check_in", 30, name="Lawyer", now=server.clock.now,
                         notify_webhook_url=receiver.url)
    encounter, keys = recorded(owner)
    assert owner.call("POST", f"/v1/encounters/{encounter}/safe").status_code == 201
    worker = server.worker()
    worker.run_once()
    receiver.received.clear()

    asked = owner.call("DELETE", f"/v1/encounters/{encounter}")
    assert asked.status_code == 202
    scheduled = asked.json()
    assert scheduled["state"] == "scheduled"
    assert scheduled["due_at"] == "2026-12-01T03:30:00.000Z"  # 72 h after the injected now

    # Before anything happens, contacts can see it: the released one in its encounter view and
    # list, every contact through the deletion itself and the notification.
    seen = family.call("GET", f"/v1/encounters/{encounter}").json()["deletion"]
    assert seen == scheduled
    [listed] = family.call("GET", "/v1/released").json()["encounters"]
    assert listed["deletion"]["due_at"] == scheduled["due_at"]
    assert error_of(lawyer.call("GET", f"/v1/encounters/{encounter}")) == (404, "not_found")
    assert lawyer.call("GET", f"/v1/encounters/{encounter}/deletion").json() == scheduled
    feed = lawyer.call("GET", "/v1/changes").json()["changes"]
    assert [(c["kind"], c["encounter_id"]) for c in feed] == [("deletion_scheduled", encounter)]
    worker.run_once()
    for contact in (family, lawyer):
        assert kinds_received(receiver, contact) == [
            ("deletion_scheduled", {"due_at": scheduled["due_at"]})]

    # The lawyer, who cannot read the recording, holds the deletion.
    held = lawyer.call("POST", f"/v1/encounters/{encounter}/hold")
    assert held.status_code == 200 and held.json()["state"] == "held"
    assert lawyer.call("POST", f"/v1/encounters/{encounter}/hold").json() == held.json()
    owner_view = owner.call("GET", f"/v1/encounters/{encounter}/deletion").json()
    assert owner_view["state"] == "held" and "held_by" not in owner_view  # who is not shown
    assert lawyer.contact_id not in json.dumps(owner_view)
    refused = owner.call("DELETE", f"/v1/encounters/{encounter}")
    assert error_of(refused) == (409, "deletion_held")

    server.clock.advance(DELAY + HOUR)
    worker.run_once()
    detail = owner.call("GET", f"/v1/encounters/{encounter}")
    assert detail.status_code == 200 and detail.json()["deletion"]["state"] == "held"
    assert all(blob_store(server).exists(key) for key in keys)
    assert owner.call("GET", chunk_path(encounter, "audio", 0)).status_code == 200


def test_a_hold_after_the_due_time_still_counts_until_the_worker_runs(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    contact = add_contact(owner, "on_alert", now=server.clock.now)
    encounter, keys = recorded(owner, chunks=1)
    assert owner.call("DELETE", f"/v1/encounters/{encounter}").status_code == 202
    server.clock.advance(DELAY + 1)
    assert contact.call("POST", f"/v1/encounters/{encounter}/hold").json()["state"] == "held"
    assert server.worker().run_once().deleted == 0
    assert blob_store(server).exists(keys[0])


def test_deletion_goes_through_after_the_delay(server: AppServer,
                                               receiver: WebhookReceiver) -> None:
    owner = registered_device(server.url, server.name)
    family = add_contact(owner, "immediate", now=server.clock.now,
                         notify_webhook_url=receiver.url)
    outsider = registered_device(server.url, server.name)
    encounter, keys = recorded(owner)
    kept, kept_keys = recorded(owner, chunks=1)
    before_size = owner.call("GET", f"/v1/encounters/{encounter}").json()["log_size"]
    assert owner.call("DELETE", f"/v1/encounters/{encounter}").status_code == 202
    worker = server.worker()

    server.clock.advance(DELAY - HOUR)
    assert worker.run_once().deleted == 0
    assert all(blob_store(server).exists(key) for key in keys)
    server.clock.advance(2 * HOUR)
    assert worker.run_once().deleted == 1

    assert not any(blob_store(server).exists(key) for key in keys)
    assert not list((server.data_dir / "blobs" / "encounters" / encounter).rglob("*.age"))
    assert blob_store(server).exists(kept_keys[0])  # only that encounter went

    gone = owner.call("GET", f"/v1/encounters/{encounter}")
    assert error_of(gone) == (410, "deleted")
    tombstone = gone.json()["error"]["details"]
    checkpoint = open_checkpoint(tombstone["checkpoint"], server.app.extensions[
        "safehold"].server_key)
    assert checkpoint.size == tombstone["tree_size"] >= before_size  # contact reads add leaves
    assert tombstone["deleted_at"] == "2026-12-01T04:30:00.000Z"
    for path in (chunk_path(encounter, "audio", 0), f"/v1/encounters/{encounter}/log/checkpoint",
                 f"/v1/encounters/{encounter}/streams/audio/receipts",  # batch reads
                 f"/v1/encounters/{encounter}/streams/audio/pack?start=0&end=1"):
        assert error_of(owner.call("GET", path)) == (410, "deleted")
        assert error_of(family.call("GET", path)) == (410, "deleted")
        assert error_of(outsider.call("GET", path)) == (404, "not_found")
    listed = [e["encounter_id"] for e in owner.call("GET", "/v1/encounters").json()["encounters"]]
    assert listed == [kept]
    released = family.call("GET", "/v1/released").json()["encounters"]
    assert [e["encounter_id"] for e in released] == [kept]
    assert family.call("GET", f"/v1/encounters/{encounter}/deletion").json()["state"] == "done"
    assert error_of(owner.call("PUT", f"/v1/encounters/{encounter}",
                               json={"started_at": "2026-11-28T03:30:00Z"})) == (410, "deleted")
    body, note = owner.seal(encounter, "audio", 5)
    assert error_of(owner.put_chunk(encounter, "audio", 5, body, note)) == (410, "deleted")
    assert not blob_store(server).exists(chunk_key(encounter, "audio", 5))
    worker.run_once()
    assert [k for k, _ in kinds_received(receiver, family)] == [
        "released", "released", "deletion_scheduled", "encounter_deleted"]
    changes = owner.call("GET", "/v1/changes").json()["changes"]
    assert [c["kind"] for c in changes if c["encounter_id"] == encounter][-2:] == [
        "deletion_scheduled", "encounter_deleted"]


def test_owner_cancels_and_may_ask_again(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    encounter, keys = recorded(owner, chunks=1)
    first = owner.call("DELETE", f"/v1/encounters/{encounter}").json()
    server.clock.advance(HOUR)
    assert owner.call("DELETE", f"/v1/encounters/{encounter}").json() == first  # same request
    cancelled = owner.call("DELETE", f"/v1/encounters/{encounter}/deletion")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert owner.call("GET", f"/v1/encounters/{encounter}").json()["deletion"] is None
    server.clock.advance(DELAY)
    assert server.worker().run_once().deleted == 0
    assert blob_store(server).exists(keys[0])
    again = owner.call("DELETE", f"/v1/encounters/{encounter}").json()
    assert again["state"] == "scheduled" and again["due_at"] > first["due_at"]


def test_refusals_change_nothing(server: AppServer) -> None:
    owner = registered_device(server.url, server.name)
    other = registered_device(server.url, server.name)
    contact = add_contact(owner, "immediate", now=server.clock.now)
    revoked = add_contact(owner, "immediate", name="Ex", now=server.clock.now)
    assert owner.call("DELETE", f"/v1/contacts/{revoked.contact_id}").status_code == 200
    encounter, _ = recorded(owner, chunks=1)
    path = f"/v1/encounters/{encounter}"
    before = evidence(server.data_dir)
    assert error_of(other.call("DELETE", path)) == (404, "not_found")
    assert error_of(other.call("DELETE", f"/v1/encounters/{uuid.uuid4()}")) == (404, "not_found")
    assert error_of(contact.call("DELETE", path)) == (403, "devices_only")
    assert error_of(owner.call("POST", path + "/hold")) == (403, "contacts_only")
    assert error_of(contact.call("POST", path + "/hold")) == (409, "no_deletion_scheduled")
    assert error_of(owner.call("DELETE", path + "/deletion")) == (409, "no_deletion_scheduled")
    assert error_of(owner.call("GET", path + "/deletion")) == (404, "no_deletion")
    assert error_of(owner.call("DELETE", path, headers={"Authorization": "Bearer x.y"})) == (
        401, "invalid_token")
    assert evidence(server.data_dir) == before
    assert owner.call("DELETE", path).status_code == 202
    assert error_of(other.call("GET", path + "/deletion")) == (404, "not_found")
    assert error_of(other.call("POST", path + "/hold")) == (403, "contacts_only")
    assert error_of(revoked.call("GET", path + "/deletion")) == (404, "not_found")
    assert error_of(revoked.call("POST", path + "/hold")) == (404, "not_found")
    assert owner.call("GET", path + "/deletion").json()["state"] == "scheduled"


def test_deletion_delay_is_configurable(tmp_path: Path) -> None:
    assert complete_config({})["DELETION_DELAY_SECONDS"] == DELAY
    app = AppServer(tmp_path / "data", {"DELETION_DELAY_SECONDS": 600}).start()
    try:
        owner = registered_device(app.url, app.name)
        encounter, keys = recorded(owner, chunks=1)
        due = owner.call("DELETE", f"/v1/encounters/{encounter}").json()["due_at"]
        assert due == "2026-11-28T03:40:00.000Z"
        app.clock.advance(601)
        assert app.worker().run_once().deleted == 1
        assert not blob_store(app).exists(keys[0])
    finally:
        app.stop()
