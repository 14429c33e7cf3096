"""Every read by a trusted contact is recorded: for the owner, and in the encounter's Merkle log.

Reads go through a real server over HTTP; the log is checked with crypto/ alone: each access
leaf is a note signed by the server's key, and the latest signed checkpoint covers every leaf.
"""

from __future__ import annotations

import base64

from contactkit import add_contact
from helpers import Device, ServerProcess, unb64, verify_receipt

from crypto.access import AccessRecord, open_access
from crypto.checkpoint import open_checkpoint, verify_checkpoints_consistent
from crypto.merkle import leaf_hash, root_hash


def leaves(owner: Device, encounter: str) -> list[bytes]:
    response = owner.call("GET", f"/v1/encounters/{encounter}/log/leaves")
    return [base64.b64decode(leaf["data"]) for leaf in response.json()["leaves"]]


def test_contact_reads_are_logged_for_the_owner_and_in_the_merkle_log(
        device: Device, live_server: ServerProcess) -> None:
    contact = add_contact(device, "immediate", name="Mom")
    encounter = device.new_encounter()
    _receipt, body, _note = device.upload(encounter, "audio", 0)
    base = f"/v1/encounters/{encounter}"
    chunk = f"{base}/streams/audio/chunks/0"

    assert device.call("GET", chunk).status_code == 200  # the owner's reads are not logged
    assert contact.call("GET", f"{base}/streams/audio/chunks/7").status_code == 404  # no data
    assert contact.call("GET", base).status_code == 200
    assert contact.call("GET", chunk).content == body
    ranged = contact.call("GET", chunk, headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, body[10:20])
    assert contact.call("GET", chunk + "/receipt").status_code == 200
    assert contact.call("GET", f"{base}/log/checkpoint").status_code == 200

    entries = device.call("GET", f"{base}/access-log").json()["entries"]
    assert [(e["contact_id"], e["contact_name"], e["what"]) for e in entries] == [
        (contact.contact_id, "Mom", what) for what in
        ("list", "chunk audio/0", "chunk audio/0", "descriptor audio/0", "log")]
    assert [e["leaf_index"] for e in entries] == [1, 2, 3, 4, 5]  # leaf 0 is the chunk

    log = leaves(device, encounter)
    server_key = live_server.server_key()
    records = [open_access(leaf.decode(), server_key) for leaf in log[1:]]
    assert records == [AccessRecord(encounter, str(contact.contact_id), e["what"], e["at"])
                       for e in entries]
    latest = device.call("GET", f"{base}/log/checkpoint").json()
    checkpoint = open_checkpoint(latest["checkpoint"], server_key)
    assert checkpoint.size == len(log)
    assert checkpoint.root == root_hash([leaf_hash(leaf) for leaf in log])


def test_the_phone_keeps_verifying_receipts_after_contacts_read(
        device: Device, live_server: ServerProcess) -> None:
    contact = add_contact(device, "immediate")
    encounter = device.new_encounter()
    first, _body, _note = device.upload(encounter, "audio", 0)
    for _ in range(3):
        contact.call("GET", f"/v1/encounters/{encounter}/log/leaves")
    second, _body, note = device.upload(encounter, "audio", 1)
    assert second["leaf_index"] == 4  # after the chunk and three access leaves
    verify_receipt(second, note, live_server.server_key())
    proof = device.call("GET", f"/v1/encounters/{encounter}/log/consistency",
                        params={"first": first["tree_size"],
                                "second": second["tree_size"]}).json()["proof"]
    verify_checkpoints_consistent(open_checkpoint(first["checkpoint"], live_server.server_key()),
                                  open_checkpoint(second["checkpoint"],
                                                  live_server.server_key()),
                                  [unb64(h) for h in proof])


def test_access_log_is_the_owners_alone(device: Device, other_device: Device) -> None:
    contact = add_contact(device, "immediate")
    encounter = device.new_encounter()
    path = f"/v1/encounters/{encounter}/access-log"
    assert device.call("GET", path).json() == {"entries": []}
    assert other_device.call("GET", path).status_code == 404
    assert contact.call("GET", path).status_code == 403
