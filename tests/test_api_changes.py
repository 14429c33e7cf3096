"""The changes feed: every change of the caller's account, in order, behind an opaque cursor."""

from __future__ import annotations

from typing import Any

from helpers import Device, error_of


def follow(device: Device, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    changes: list[dict[str, Any]] = []
    cursors: list[str] = []
    cursor = None
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = device.call("GET", "/v1/changes", params=params).json()
        changes += page["changes"]
        cursors.append(page["cursor"])
        cursor = page["cursor"]
        if page["done"]:
            return changes, cursors


def test_feed_reports_encounters_and_chunks_in_order(device: Device,
                                                      other_device: Device) -> None:
    encounter = device.new_encounter()
    device.upload(encounter, "log", 0)
    device.upload(encounter, "audio", 0)
    other_device.upload(other_device.new_encounter(), "audio", 0)  # not in device's feed
    changes, _ = follow(device, limit=2)
    assert [(c["kind"], c["encounter_id"], c["stream"], c["seq"]) for c in changes] == [
        ("encounter_created", encounter, None, None),
        ("chunk_stored", encounter, "log", 0),
        ("chunk_stored", encounter, "audio", 0),
    ]
    ids = [c["id"] for c in changes]
    assert ids == sorted(ids) and all(c["at"].endswith("Z") for c in changes)


def test_cursor_resumes_where_it_stopped(device: Device) -> None:
    encounter = device.new_encounter()
    seen, cursors = follow(device, limit=100)
    assert len(seen) == 1
    device.upload(encounter, "audio", 0)
    page = device.call("GET", "/v1/changes", params={"cursor": cursors[-1]}).json()
    assert [(c["kind"], c["seq"]) for c in page["changes"]] == [("chunk_stored", 0)]
    assert page["done"] is True
    empty = device.call("GET", "/v1/changes", params={"cursor": page["cursor"]}).json()
    assert empty["changes"] == [] and empty["cursor"] == page["cursor"] and empty["done"]


def test_refusals(device: Device) -> None:
    assert error_of(device.call("GET", "/v1/changes", params={"cursor": "garbage"})) == (
        400, "bad_cursor")
    assert error_of(device.call("GET", "/v1/changes", params={"limit": 0})) == (
        422, "invalid_request")
    device.token = None
    assert error_of(device.call("GET", "/v1/changes")) == (401, "auth_required")
