"""A contact's changes feed: `released` first, then what happens to released encounters only."""

from __future__ import annotations

from typing import Any

from contactkit import Invitee, add_contact
from helpers import Device


def page(contact: Invitee, cursor: str | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    response = contact.call("GET", "/v1/changes", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def follow(contact: Invitee, cursor: str | None, limit: int) -> tuple[list[tuple[str, str]],
                                                                      str | None]:
    seen: list[tuple[str, str]] = []
    while True:
        body = page(contact, cursor, limit)
        seen += [(c["kind"], c["encounter_id"]) for c in body["changes"]]
        cursor = body["cursor"]
        if body["done"]:
            return seen, cursor


def test_feed_shows_releases_then_only_released_encounters(device: Device) -> None:
    contact = add_contact(device, "on_alert")
    shown = device.new_encounter()
    hidden = device.new_encounter()
    device.upload(shown, "audio", 0)
    device.upload(hidden, "audio", 0)
    seen, cursor = follow(contact, None, limit=1)
    assert seen == []  # nothing released yet; the cursor moved past what it may not see

    assert device.call("POST", f"/v1/encounters/{shown}/alert").status_code == 201
    device.upload(shown, "audio", 1)
    device.upload(hidden, "audio", 1)
    device.call("POST", f"/v1/encounters/{shown}/safe")
    seen, cursor = follow(contact, cursor, limit=1)
    assert seen == [("alert", shown), ("released", shown), ("chunk_stored", shown),
                    ("safe", shown)]
    assert follow(contact, cursor, limit=1)[0] == []
    # The owner's own feed has none of the contact's rows.
    owner = device.call("GET", "/v1/changes", params={"limit": 1000}).json()["changes"]
    assert "released" not in {c["kind"] for c in owner}
    assert {"contact_accepted", "contact_confirmed", "alert", "safe"} <= {c["kind"]
                                                                         for c in owner}


def test_a_revoked_contact_follows_nothing(device: Device) -> None:
    contact = add_contact(device, "immediate")
    encounter = device.new_encounter()
    assert [k for k, _ in follow(contact, None, 100)[0]] == ["released"]
    device.call("DELETE", f"/v1/contacts/{contact.contact_id}")
    device.upload(encounter, "audio", 0)
    assert follow(contact, None, 100)[0] == []
    assert contact.call("GET", "/v1/released").json() == {"encounters": []}
