"""An encounter's Merkle log over HTTP: checkpoints, proofs and leaves all verify with crypto/."""

from __future__ import annotations

import pytest
import requests
from helpers import Device, ServerProcess, error_of, unb64

from crypto.checkpoint import (
    Checkpoint,
    encounter_origin,
    open_checkpoint,
    verify_checkpoints_consistent,
    verify_leaf_in_checkpoint,
)
from crypto.merkle import EMPTY_ROOT, leaf_hash, root_hash


@pytest.fixture
def logged(device: Device) -> tuple[Device, str, list[str]]:
    """An encounter with 7 chunks; returns the descriptor notes in log order."""
    encounter = device.new_encounter()
    notes = [device.upload(encounter, stream, seq)[2]
             for stream, seq in (("log", 0), ("audio", 0), ("audio", 1), ("video", 0),
                                 ("audio", 2), ("log", 1), ("video", 1))]
    return device, encounter, notes


def log_get(device: Device, encounter: str, what: str, **params: int) -> requests.Response:
    return device.call("GET", f"/v1/encounters/{encounter}/log/{what}", params=params)


def test_new_encounter_has_a_signed_empty_checkpoint(device: Device,
                                                     live_server: ServerProcess) -> None:
    encounter = device.new_encounter()
    body = log_get(device, encounter, "checkpoint").json()
    assert body["tree_size"] == 0
    checkpoint = open_checkpoint(body["checkpoint"], live_server.server_key())
    assert checkpoint == Checkpoint(encounter_origin(live_server.name, encounter), 0, EMPTY_ROOT)


def test_latest_checkpoint_covers_exactly_the_leaves(logged, live_server: ServerProcess) -> None:
    device, encounter, notes = logged
    body = log_get(device, encounter, "checkpoint").json()
    checkpoint = open_checkpoint(body["checkpoint"], live_server.server_key(),
                                 expected_origin=encounter_origin(live_server.name, encounter))
    assert body["tree_size"] == checkpoint.size == len(notes)
    leaves = log_get(device, encounter, "leaves").json()["leaves"]
    assert [leaf["index"] for leaf in leaves] == list(range(len(notes)))
    assert [unb64(leaf["data"]).decode() for leaf in leaves] == notes
    assert checkpoint.root == root_hash([leaf_hash(n.encode()) for n in notes])


def test_every_historic_checkpoint_is_consistent_with_the_latest(
        logged, live_server: ServerProcess) -> None:
    device, encounter, notes = logged
    key = live_server.server_key()
    latest = open_checkpoint(log_get(device, encounter, "checkpoint").json()["checkpoint"], key)
    for size in range(1, len(notes) + 1):
        old = open_checkpoint(log_get(device, encounter, f"checkpoints/{size}").json()
                              ["checkpoint"], key)
        assert old.size == size
        proof = log_get(device, encounter, "consistency", first=size,
                        second=len(notes)).json()["proof"]
        verify_checkpoints_consistent(old, latest, [unb64(h) for h in proof])


def test_inclusion_proofs_for_any_leaf_and_size(logged, live_server: ServerProcess) -> None:
    device, encounter, notes = logged
    key = live_server.server_key()
    for size in (3, len(notes)):
        cp = open_checkpoint(log_get(device, encounter, f"checkpoints/{size}").json()
                             ["checkpoint"], key)
        for index in range(size):
            body = log_get(device, encounter, "inclusion", index=index, tree_size=size).json()
            assert (body["leaf_index"], body["tree_size"]) == (index, size)
            verify_leaf_in_checkpoint(cp, notes[index].encode(), index,
                                      [unb64(h) for h in body["proof"]])


def test_leaf_pages(logged) -> None:
    device, encounter, notes = logged
    page = log_get(device, encounter, "leaves", start=2, end=5).json()["leaves"]
    assert [(p["index"], unb64(p["data"]).decode()) for p in page] == list(
        enumerate(notes))[2:5]
    assert log_get(device, encounter, "leaves", start=7).json() == {"leaves": []}


def test_out_of_range_requests(logged) -> None:
    device, encounter, notes = logged
    n = len(notes)
    refused = [
        log_get(device, encounter, "consistency", first=0, second=n),
        log_get(device, encounter, "consistency", first=3, second=2),
        log_get(device, encounter, "consistency", first=1, second=n + 1),
        log_get(device, encounter, "inclusion", index=n, tree_size=n),
        log_get(device, encounter, "inclusion", index=0, tree_size=n + 1),
        log_get(device, encounter, "leaves", start=5, end=3),
        log_get(device, encounter, "leaves", start=0, end=n + 1),
    ]
    assert [error_of(r) for r in refused] == [(400, "out_of_range")] * len(refused)
    assert error_of(log_get(device, encounter, f"checkpoints/{n + 1}")) == (404, "not_found")
    # Found by schemathesis: a size beyond SQLite's integers was a 500.
    assert error_of(log_get(device, encounter, f"checkpoints/{10**25}")) == (404, "not_found")
    assert error_of(log_get(device, encounter, "consistency", first=1)) == (
        422, "invalid_request")
    assert error_of(log_get(device, encounter, "inclusion", index=-1, tree_size=2)) == (
        422, "invalid_request")


def test_logs_of_other_accounts_are_not_found(logged, other_device: Device) -> None:
    _, encounter, _ = logged
    for what, params in (("checkpoint", {}), ("checkpoints/1", {}),
                         ("consistency", {"first": 1, "second": 2}),
                         ("inclusion", {"index": 0, "tree_size": 1}), ("leaves", {})):
        response = log_get(other_device, encounter, what, **params)
        assert error_of(response) == (404, "not_found"), what
