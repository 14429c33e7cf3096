"""Chunk upload: receipts that verify, idempotent repeats, reads, and every refusal."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator

import pytest
from helpers import (
    Device,
    ServerProcess,
    b64,
    chunk_path,
    error_of,
    evidence,
    unb64,
    verify_receipt,
)

from crypto import age
from crypto.checkpoint import open_checkpoint, verify_checkpoints_consistent
from crypto.descriptor import describe_chunk, sign_descriptor
from crypto.signing import generate_signing_key
from crypto.slot import Slot


def test_receipt_verifies_and_repeat_returns_the_same(device: Device,
                                                       live_server: ServerProcess) -> None:
    server_key = live_server.server_key()
    encounter = device.new_encounter()
    first, body, note = device.upload(encounter, "audio", 0)
    assert (first["encounter_id"], first["stream"], first["seq"]) == (encounter, "audio", 0)
    assert (first["leaf_index"], first["tree_size"]) == (0, 1)
    first_cp = verify_receipt(first, note, server_key)
    later = [device.upload(encounter, "audio", seq) for seq in (1, 2, 3)]
    for receipt, _, later_note in later:
        verify_receipt(receipt, later_note, server_key)
    repeat = device.put_chunk(encounter, "audio", 0, body, note)
    assert repeat.status_code == 200 and repeat.json() == first  # checkpoint at tree size 1
    last = later[-1][0]
    last_cp = open_checkpoint(last["checkpoint"], server_key)
    proof = device.call("GET", f"/v1/encounters/{encounter}/log/consistency",
                        params={"first": 1, "second": last["tree_size"]}).json()["proof"]
    verify_checkpoints_consistent(first_cp, last_cp, [unb64(h) for h in proof])
    stored = live_server.data_dir / "blobs" / "encounters" / encounter / "audio" / "00000000.age"
    assert stored.read_bytes() == body


def test_chunks_arrive_in_any_order(device: Device, live_server: ServerProcess) -> None:
    encounter = device.new_encounter()
    for stream, seq in (("video", 5), ("audio", 2), ("log", 0), ("video", 1), ("audio", 0)):
        receipt, _, note = device.upload(encounter, stream, seq)
        verify_receipt(receipt, note, live_server.server_key())
    streams = device.call("GET", f"/v1/encounters/{encounter}").json()["streams"]
    assert {k: v["seqs"] for k, v in streams.items()} == {
        "video": [1, 5], "audio": [0, 2], "log": [0]}


def test_reading_back_bytes_ranges_and_receipt(device: Device) -> None:
    encounter = device.new_encounter()
    receipt, body, note = device.upload(encounter, "audio", 0, payload=b"x" * 1000)
    path = chunk_path(encounter, "audio", 0)
    whole = device.call("GET", path)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert unb64(whole.headers["Safehold-Descriptor"]).decode() == note
    etag = whole.headers["ETag"]
    assert device.call("GET", path, headers={"If-None-Match": etag}).status_code == 304
    part = device.call("GET", path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == body[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(body)}"
    tail = device.call("GET", path, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == body[-5:]
    beyond = device.call("GET", path, headers={"Range": f"bytes={len(body)}-"})
    assert error_of(beyond) == (416, "range_not_satisfiable")
    stored = device.call("GET", path + "/receipt").json()
    assert stored == {**receipt, "descriptor": note}
    assert error_of(device.call("GET", chunk_path(encounter, "audio", 1))) == (404, "not_found")
    assert error_of(device.call("GET", chunk_path(encounter, "audio", 1) + "/receipt")) == (
        404, "not_found")


def test_other_accounts_cannot_read_or_write(device: Device, other_device: Device,
                                             live_server: ServerProcess) -> None:
    encounter = device.new_encounter()
    device.upload(encounter, "audio", 0)
    path = chunk_path(encounter, "audio", 0)
    for suffix in ("", "/receipt"):
        assert error_of(other_device.call("GET", path + suffix)) == (404, "not_found")
    before = evidence(live_server.data_dir)
    body, note = other_device.seal(encounter, "audio", 1)
    assert error_of(other_device.put_chunk(encounter, "audio", 1, body, note)) == (
        404, "not_found")
    assert evidence(live_server.data_dir) == before


# ------------------------------------------------------------------------- every refusal


@pytest.fixture
def scene(device: Device, live_server: ServerProcess) -> Iterator[tuple[Device, str]]:
    """An encounter holding audio 0; every refusal below must leave everything as it was."""
    encounter = device.new_encounter()
    device.upload(encounter, "audio", 0)
    before = evidence(live_server.data_dir)
    yield device, encounter
    assert evidence(live_server.data_dir) == before


def signed_for(device: Device, body: bytes, slot: Slot, key: str | None = None) -> str:
    desc = describe_chunk(body, slot, "2026-11-28T03:30:01.123Z")
    return sign_descriptor(desc, key or device.signing_key)


def test_refused_without_a_valid_token(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    body, note = device.seal(encounter, "audio", 1)
    token, device.token = device.token, None
    assert error_of(device.put_chunk(encounter, "audio", 1, body, note)) == (
        401, "auth_required")
    device.token = "nope.nope"
    assert error_of(device.put_chunk(encounter, "audio", 1, body, note)) == (
        401, "invalid_token")
    device.token = token


def test_refused_for_an_unknown_encounter(scene: tuple[Device, str]) -> None:
    device, _ = scene
    ghost = str(uuid.uuid4())
    body, note = device.seal(ghost, "audio", 0)
    assert error_of(device.put_chunk(ghost, "audio", 0, body, note)) == (404, "not_found")


def test_refused_without_content_length(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    body, note = device.seal(encounter, "audio", 1)
    response = device.call("PUT", chunk_path(encounter, "audio", 1), data=iter([body]),
                           headers={"Safehold-Descriptor": b64(note.encode())})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert error_of(response) == (411, "length_required")


def test_refused_when_too_large_before_reading(scene: tuple[Device, str],
                                               live_server: ServerProcess) -> None:
    device, encounter = scene
    body, note = device.seal(encounter, "audio", 1)
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    conn.putrequest("PUT", chunk_path(encounter, "audio", 1))
    for name, value in {**device.headers(), "Safehold-Descriptor": b64(note.encode()),
                        "Content-Length": str(4 * 1024 * 1024 + 1)}.items():
        conn.putheader(name, value)
    conn.endheaders()  # and no body: the answer must not wait for 4 MiB
    response = conn.getresponse()
    status, raw = response.status, response.read()
    conn.close()
    assert status == 413 and b'"too_large"' in raw


def test_refused_without_descriptor(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    body, _ = device.seal(encounter, "audio", 1)
    response = device.call("PUT", chunk_path(encounter, "audio", 1), data=body)
    assert error_of(response) == (422, "invalid_request")
    assert "Safehold-Descriptor" in response.json()["error"]["details"]["headers"]


@pytest.mark.parametrize("header", ["%%%not base64%%%", b64(b"\xff\xfe"), b64(b"hello\n")])
def test_refused_with_malformed_descriptor(scene: tuple[Device, str], header: str) -> None:
    device, encounter = scene
    body, _ = device.seal(encounter, "audio", 1)
    response = device.call("PUT", chunk_path(encounter, "audio", 1), data=body,
                           headers={"Safehold-Descriptor": header})
    assert error_of(response) == (400, "bad_descriptor")


def test_refused_with_descriptor_signed_by_another_key(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    body, _ = device.seal(encounter, "audio", 1)
    intruder = generate_signing_key(f"device-{device.device_id}")  # same name, other key
    note = signed_for(device, body, Slot(encounter, "audio", 1, False), intruder)
    assert error_of(device.put_chunk(encounter, "audio", 1, body, note)) == (
        400, "bad_signature")
    tampered = signed_for(device, body, Slot(encounter, "audio", 1, False)).replace(
        "seq 1\n", "seq 2\n")
    assert error_of(device.put_chunk(encounter, "audio", 2, body, tampered)) == (
        400, "bad_signature")


def test_refused_when_descriptor_names_another_slot(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    body, note = device.seal(encounter, "audio", 5)
    for stream, seq in (("audio", 6), ("video", 5)):
        response = device.put_chunk(encounter, stream, seq, body, note)
        assert error_of(response) == (400, "descriptor_mismatch")


def test_refused_on_size_and_digest_mismatch(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    body, note = device.seal(encounter, "audio", 1)
    assert error_of(device.put_chunk(encounter, "audio", 1, body + b"!", note)) == (
        400, "size_mismatch")
    flipped = body[:-1] + bytes([body[-1] ^ 1])
    assert error_of(device.put_chunk(encounter, "audio", 1, flipped, note)) == (
        400, "digest_mismatch")


def test_refused_when_not_sealed_to_a_recipient(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    slot = Slot(encounter, "audio", 1, False)
    plaintext = b"the raw recording, unencrypted"
    note = signed_for(device, plaintext, slot)
    assert error_of(device.put_chunk(encounter, "audio", 1, plaintext, note)) == (
        400, "not_age")
    passphrase_only = age.encrypt_with_passphrase(b"secret", "correct horse", work_factor=2)
    note = signed_for(device, passphrase_only, slot)
    assert error_of(device.put_chunk(encounter, "audio", 1, passphrase_only, note)) == (
        400, "not_age")


def test_refused_when_the_age_slot_disagrees(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    recipients = [device.recovery_recipient]
    cases = {
        "other seq": age.encrypt(b"x", recipients, slot=Slot(encounter, "audio", 7, False)),
        "final flag": age.encrypt(b"x", recipients, slot=Slot(encounter, "audio", 1, True)),
        "other encounter": age.encrypt(b"x", recipients,
                                       slot=Slot(str(uuid.uuid4()), "audio", 1, False)),
        "no slot": age.encrypt(b"x", recipients),
    }
    for case, body in cases.items():
        note = signed_for(device, body, Slot(encounter, "audio", 1, False))
        response = device.put_chunk(encounter, "audio", 1, body, note)
        assert error_of(response) == (400, "slot_mismatch"), case


def test_refused_when_slot_holds_other_bytes(scene: tuple[Device, str]) -> None:
    device, encounter = scene
    body, note = device.seal(encounter, "audio", 0, payload=b"a different recording")
    assert error_of(device.put_chunk(encounter, "audio", 0, body, note)) == (
        409, "chunk_exists")


def test_stream_closes_at_its_final_chunk(device: Device, live_server: ServerProcess) -> None:
    encounter = device.new_encounter()
    for seq in (0, 2):
        device.upload(encounter, "audio", seq)
    before = evidence(live_server.data_dir)
    body, note = device.seal(encounter, "audio", 1, final=True)  # but seq 2 is already held
    assert error_of(device.put_chunk(encounter, "audio", 1, body, note)) == (
        409, "stream_closed")
    assert evidence(live_server.data_dir) == before
    device.upload(encounter, "audio", 1)
    device.upload(encounter, "audio", 3, final=True)
    before = evidence(live_server.data_dir)
    for seq, final in ((4, False), (5, True)):
        body, note = device.seal(encounter, "audio", seq, final=final)
        assert error_of(device.put_chunk(encounter, "audio", seq, body, note)) == (
            409, "stream_closed")
    assert evidence(live_server.data_dir) == before
    device.upload(encounter, "video", 4)  # other streams go on
    assert device.call("GET", f"/v1/encounters/{encounter}").json()["streams"]["audio"] == {
        "seqs": [0, 1, 2, 3], "final_seq": 3}


def test_stream_count_is_limited(device: Device, live_server: ServerProcess) -> None:
    encounter = device.new_encounter()
    for n in range(8):
        device.upload(encounter, f"s{n}", 0)
    before = evidence(live_server.data_dir)
    body, note = device.seal(encounter, "one-too-many", 0)
    assert error_of(device.put_chunk(encounter, "one-too-many", 0, body, note)) == (
        409, "too_many_streams")
    assert evidence(live_server.data_dir) == before
    device.upload(encounter, "s3", 1)  # existing streams still grow
