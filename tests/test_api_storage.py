"""A chunk is acknowledged only when blob and metadata are durable; retries complete crashes."""

from __future__ import annotations

import hashlib

from helpers import ServerProcess, error_of, evidence, registered_device, verify_receipt

from server.blobs.local import LocalBlobStore
from server.blobs.store import chunk_key


def test_retry_after_crash_between_blob_and_metadata_completes(make_server) -> None:
    server: ServerProcess = make_server()
    phone = registered_device(server.url, server.name)
    encounter = phone.new_encounter()
    body, note = phone.seal(encounter, "audio", 0)
    # The state a crash after BlobStore.put and before the metadata commit leaves behind.
    blobs = LocalBlobStore(server.data_dir / "blobs")
    blobs.put(chunk_key(encounter, "audio", 0), body, hashlib.sha256(body).hexdigest())
    assert phone.call("GET", f"/v1/encounters/{encounter}").json()["streams"] == {}
    response = phone.put_chunk(encounter, "audio", 0, body, note)  # the phone's retry
    assert response.status_code == 201
    verify_receipt(response.json(), note, server.server_key())
    assert phone.call("GET", f"/v1/encounters/{encounter}").json()["log_size"] == 1


def test_orphaned_blob_is_never_overwritten_by_other_bytes(make_server) -> None:
    server: ServerProcess = make_server()
    phone = registered_device(server.url, server.name)
    encounter = phone.new_encounter()
    orphan, _ = phone.seal(encounter, "audio", 0, payload=b"first attempt")
    LocalBlobStore(server.data_dir / "blobs").put(
        chunk_key(encounter, "audio", 0), orphan, hashlib.sha256(orphan).hexdigest())
    before = evidence(server.data_dir)
    body, note = phone.seal(encounter, "audio", 0, payload=b"something else")
    assert error_of(phone.put_chunk(encounter, "audio", 0, body, note)) == (409, "chunk_exists")
    assert evidence(server.data_dir) == before


def test_everything_acknowledged_survives_a_restart(make_server) -> None:
    server: ServerProcess = make_server()
    phone = registered_device(server.url, server.name)
    encounter = phone.new_encounter()
    receipts = [phone.upload(encounter, "audio", seq) for seq in range(3)]
    server.stop()
    server.start()
    phone.login()
    for seq, (receipt, body, note) in enumerate(receipts):
        path = f"/v1/encounters/{encounter}/streams/audio/chunks/{seq}"
        assert phone.call("GET", path).content == body
        assert phone.call("GET", path + "/receipt").json() == {**receipt, "descriptor": note}
    receipt, _, note = phone.upload(encounter, "audio", 3)  # the log carries on
    assert receipt["leaf_index"] == 3
    verify_receipt(receipt, note, server.server_key())
