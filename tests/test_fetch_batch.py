"""The batch reads a long fetch uses, over HTTP against a real server: receipts by the page,
a stream's chunks by the pack, each refusal with its code, a trusted contact's batch read in
the access log exactly as the single reads it replaces; the 429 message names its seconds; and
fetch's own consistency proofs are the ones the server would have sent.
"""

from __future__ import annotations

import os

import pytest
import requests
from contactkit import add_contact
from helpers import Device, ServerProcess, error_of, evidence, registered_device

from crypto.merkle import consistency_proof as reference_proof
from crypto.merkle import leaf_hash
from sync.fetching.proofs import SubtreeRoots, consistency_proof

MIB = 1024 * 1024


def recorded(device: Device, count: int, payload: int = 64) -> tuple[str, list[bytes], list]:
    encounter = device.new_encounter()
    bodies, receipts = [], []
    for seq in range(count):
        receipt, body, _note = device.upload(encounter, "audio", seq, final=seq == count - 1,
                                             payload=os.urandom(payload))
        bodies.append(body)
        receipts.append(receipt)
    return encounter, bodies, receipts


def test_receipts_come_by_the_page_in_seq_order_as_the_single_reads_give_them(
        device: Device) -> None:
    encounter, _bodies, _receipts = recorded(device, 7)
    device.upload(encounter, "video", 0)  # another stream: not on audio's pages
    receipts = f"/v1/encounters/{encounter}/streams/audio/receipts"
    pages, start = [], 0
    while start is not None:
        page = device.call("GET", receipts, params={"start": start, "limit": 3})
        assert page.status_code == 200, page.text
        pages.append(page.json()["receipts"])
        start = page.json()["next"]
    assert [len(p) for p in pages] == [3, 3, 1]
    got = [r for page in pages for r in page]
    assert [(r["stream"], r["seq"]) for r in got] == [("audio", n) for n in range(7)]
    for receipt in got:  # byte for byte what GET .../chunks/{seq}/receipt answers
        single = device.call("GET", f"/v1/encounters/{encounter}/streams/audio/chunks/"
                                    f"{receipt['seq']}/receipt").json()
        assert receipt == single
    # A page beyond the last seq is empty, and says there is no next one.
    assert device.call("GET", receipts, params={"start": 99}).json() == \
        {"receipts": [], "next": None}


@pytest.mark.parametrize("query", [{"limit": 501}, {"limit": 0}, {"start": -1},
                                   {"start": 2**32}])
def test_receipts_refuse_pages_out_of_bounds(device: Device, query: dict[str, int]) -> None:
    encounter, _bodies, _receipts = recorded(device, 1)
    answer = device.call("GET", f"/v1/encounters/{encounter}/streams/audio/receipts",
                         params=query)
    assert error_of(answer) == (422, "invalid_request")


def test_a_pack_is_the_chunks_bytes_one_after_the_other(device: Device) -> None:
    encounter, bodies, _receipts = recorded(device, 6, payload=3000)
    answer = device.call("GET", f"/v1/encounters/{encounter}/streams/audio/pack",
                         params={"start": 1, "end": 5})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.content == b"".join(bodies[1:5])
    assert int(answer.headers["Content-Length"]) == sum(len(b) for b in bodies[1:5])


def test_a_pack_refuses_a_run_with_a_missing_seq_or_out_of_bounds(device: Device) -> None:
    encounter = device.new_encounter()
    for seq in (0, 1, 3):
        device.upload(encounter, "audio", seq)
    pack = f"/v1/encounters/{encounter}/streams/audio/pack"
    missing = device.call("GET", pack, params={"start": 0, "end": 4})
    assert error_of(missing) == (404, "not_found")
    assert "audio/2" in missing.json()["error"]["message"]
    for bounds in ({"start": 3, "end": 3}, {"start": 0, "end": 257}, {"start": 0}):
        assert error_of(device.call("GET", pack, params=bounds)) == (422, "invalid_request")
    assert error_of(device.call("GET", f"/v1/encounters/{encounter}/streams/video/pack",
                                params={"start": 0, "end": 1})) == (404, "not_found")


def test_a_pack_of_several_chunks_holds_at_most_16_mib(live_server: ServerProcess,
                                                        device: Device) -> None:
    encounter, bodies, _receipts = recorded(device, 5, payload=int(3.5 * MIB))
    pack = f"/v1/encounters/{encounter}/streams/audio/pack"
    before = evidence(live_server.data_dir)
    too_big = device.call("GET", pack, params={"start": 0, "end": 5})
    assert error_of(too_big) == (400, "pack_too_large")
    assert "at most 16777216 bytes" in too_big.json()["error"]["message"]
    assert evidence(live_server.data_dir) == before
    # Four of them fit; one chunk alone always does.
    assert device.call("GET", pack, params={"start": 0, "end": 4}).content == b"".join(bodies[:4])
    assert device.call("GET", pack, params={"start": 4, "end": 5}).content == bodies[4]


def test_a_contacts_batch_read_is_logged_as_one_entry_naming_its_seqs(device: Device) -> None:
    mom = add_contact(device, "immediate", name="Mom")  # released to her as it is recorded
    encounter, bodies, _receipts = recorded(device, 4)
    receipts = mom.call("GET", f"/v1/encounters/{encounter}/streams/audio/receipts")
    assert [r["seq"] for r in receipts.json()["receipts"]] == [0, 1, 2, 3]
    pack = mom.call("GET", f"/v1/encounters/{encounter}/streams/audio/pack",
                    params={"start": 0, "end": 4})
    assert pack.content == b"".join(bodies)
    one = mom.call("GET", f"/v1/encounters/{encounter}/streams/audio/pack",
                   params={"start": 2, "end": 3})
    assert one.content == bodies[2]
    refused = mom.call("GET", f"/v1/encounters/{encounter}/streams/audio/pack",
                       params={"start": 0, "end": 9})
    assert error_of(refused) == (404, "not_found")  # a refused read is no read
    entries = device.call("GET", f"/v1/encounters/{encounter}/access-log").json()["entries"]
    # One entry per request, as for single reads, naming exactly the seqs it served; a pack of
    # one chunk is named as the single read of that chunk.
    assert [e["what"] for e in entries] == ["descriptor audio/0-3", "chunk audio/0-3",
                                            "chunk audio/2"]
    assert {e["contact_id"] for e in entries} == {str(mom.contact_id)}
    assert [e["leaf_index"] for e in entries] == [4, 5, 6]  # leaves of the log, after the chunks
    checkpoint = device.call("GET", f"/v1/encounters/{encounter}/log/checkpoint").json()
    assert checkpoint["tree_size"] == 7
    # The owner's own batch reads are not contacts' reads: nothing more is logged.
    device.call("GET", f"/v1/encounters/{encounter}/streams/audio/receipts")
    assert len(device.call("GET", f"/v1/encounters/{encounter}/access-log").json()["entries"]) \
        == 3


def test_an_empty_page_read_by_a_contact_is_logged_as_a_listing(device: Device) -> None:
    mom = add_contact(device, "immediate", name="Mom")
    encounter, _bodies, _receipts = recorded(device, 1)
    assert mom.call("GET", f"/v1/encounters/{encounter}/streams/audio/receipts",
                    params={"start": 50}).json() == {"receipts": [], "next": None}
    entries = device.call("GET", f"/v1/encounters/{encounter}/access-log").json()["entries"]
    assert [e["what"] for e in entries] == ["list"]


def test_the_429_message_names_the_seconds_of_its_retry_after(make_server) -> None:
    server = make_server(env={"SAFEHOLD_RATE_PER_MINUTE": "3"})
    phone = registered_device(server.url, server.name)
    answers = [phone.call("GET", "/v1/account") for _ in range(5)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    for answer in limited:
        seconds = answer.headers["Retry-After"]
        assert int(seconds) >= 1
        assert error_of(answer) == (429, "rate_limited")
        assert answer.json()["error"]["message"] == \
            f"Too many requests from this client; retry after {seconds} seconds."
    before_login = [requests.post(server.url + "/v1/auth/challenge", timeout=5,
                                  json={"device_id": phone.device_id}) for _ in range(5)]
    anonymous = [a for a in before_login if a.status_code == 429]
    assert anonymous and all(
        f"retry after {a.headers['Retry-After']} seconds" in a.json()["error"]["message"]
        for a in anonymous)


def test_fetchs_own_consistency_proofs_are_the_rfc_9162_ones() -> None:
    hashes = [leaf_hash(os.urandom(8)) for _ in range(77)]
    tree = SubtreeRoots(hashes)
    for old in range(1, 78):
        assert consistency_proof(old, tree) == reference_proof(old, hashes), old
    for size in (1, 2, 5, 64):  # and for every prefix tree as its own latest
        sub = SubtreeRoots(hashes[:size])
        assert [consistency_proof(m, sub) for m in range(1, size + 1)] == \
            [reference_proof(m, hashes[:size]) for m in range(1, size + 1)]
