"""Encounters: phone-made ids, idempotent creation, possibly long after recording, private."""

from __future__ import annotations

import uuid

from helpers import Device, ServerProcess, error_of, evidence


def test_put_creates_then_repeats_unchanged(device: Device, live_server: ServerProcess) -> None:
    encounter = str(uuid.uuid4())
    path = f"/v1/encounters/{encounter}"
    # Recorded offline a year ago, with a local offset: stored as UTC with milliseconds.
    created = device.call("PUT", path, json={"started_at": "2025-11-28T04:30:00.5+01:00"})
    assert created.status_code == 201
    body = created.json()
    assert body["encounter_id"] == encounter
    assert body["started_at"] == "2025-11-28T03:30:00.500Z"
    assert body["log_origin"] == f"{live_server.name}/safehold/encounter/{encounter}"
    again = device.call("PUT", path, json={"started_at": "2026-01-01T00:00:00.000Z"})
    assert again.status_code == 200 and again.json() == body  # the first one stands


def test_list_and_detail(device: Device) -> None:
    first, second = device.new_encounter(), device.new_encounter()
    listed = device.call("GET", "/v1/encounters").json()["encounters"]
    assert [e["encounter_id"] for e in listed] == [first, second]
    device.upload(first, "log", 0)
    device.upload(first, "audio", 0)
    device.upload(first, "audio", 2, final=True)
    detail = device.call("GET", f"/v1/encounters/{first}").json()
    assert detail["log_size"] == 3
    assert detail["streams"] == {"log": {"seqs": [0], "final_seq": None},
                                 "audio": {"seqs": [0, 2], "final_seq": 2}}
    assert device.call("GET", f"/v1/encounters/{second}").json()["streams"] == {}


def test_other_accounts_see_nothing(device: Device, other_device: Device,
                                    live_server: ServerProcess) -> None:
    mine = device.new_encounter()
    device.upload(mine, "audio", 0)
    theirs = other_device.call("GET", f"/v1/encounters/{mine}")
    missing = other_device.call("GET", f"/v1/encounters/{uuid.uuid4()}")
    assert error_of(theirs) == error_of(missing) == (404, "not_found")
    assert theirs.json() == missing.json()  # no way to tell "exists" from "doesn't"
    assert other_device.call("GET", "/v1/encounters").json() == {"encounters": []}
    before = evidence(live_server.data_dir)
    taken = other_device.call("PUT", f"/v1/encounters/{mine}",
                              json={"started_at": "2026-11-28T03:30:00Z"})
    assert error_of(taken) == (409, "encounter_taken")
    assert evidence(live_server.data_dir) == before


def test_malformed_ids_and_times_are_refused(device: Device) -> None:
    upper = str(uuid.uuid4()).upper()
    response = device.call("PUT", f"/v1/encounters/{upper}",
                           json={"started_at": "2026-11-28T03:30:00Z"})
    assert error_of(response) == (404, "not_found")
    for started_at in ("yesterday", "2026-11-28T03:30:00", 12, "2026-13-01T00:00:00Z"):
        response = device.call("PUT", f"/v1/encounters/{uuid.uuid4()}",
                               json={"started_at": started_at})
        assert error_of(response) == (422, "invalid_request"), started_at
    assert device.call("GET", "/v1/encounters").json() == {"encounters": []}
