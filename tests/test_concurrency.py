"""Many phones and many threads at once against gunicorn with several worker processes: every
chunk is stored once, each encounter's log holds exactly the chunks sent, and every receipt
verifies against the final checkpoint."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from helpers import Device, registered_device
from log_audit import (
    Gunicorn,
    Sealed,
    audit_log,
    clone,
    get_json,
    seal_many,
    verify_against_latest,
)
from moto_s3 import moto_endpoint, new_bucket  # noqa: F401 - a fixture

Upload = tuple[Sealed, int, dict[str, Any]]


@pytest.fixture(scope="module", params=["local", "s3"])
def gunicorn(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    env = {}
    if request.param == "s3":  # chunk bodies in moto's S3 over HTTP, metadata in SQLite
        endpoint = request.getfixturevalue("moto_endpoint")
        env = {"SAFEHOLD_BLOB_STORE": "s3", "SAFEHOLD_S3_BUCKET": new_bucket(endpoint),
               "SAFEHOLD_S3_ENDPOINT_URL": endpoint}
    data_dir = tmp_path_factory.mktemp(f"concurrency-{request.param}") / "data"
    server = Gunicorn(data_dir, workers=3, env=env).start()
    yield server
    server.stop()


def upload_all(jobs: list[tuple[Device, Sealed]], threads: int) -> list[Upload]:
    """Send every job from a pool of threads, each thread with its own HTTP session."""
    sessions: dict[tuple[int, str], Device] = {}

    def send(job: tuple[Device, Sealed]) -> Upload:
        import threading

        device, chunk = job
        key = (threading.get_ident(), device.device_id)
        mine = sessions.setdefault(key, clone(device))
        response = mine.put_chunk(chunk.encounter, chunk.stream, chunk.seq, chunk.body,
                                  chunk.note)
        return chunk, response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(send, jobs))


def check_encounter(device: Device, server_key: str, sent: list[Sealed],
                    uploads: list[Upload]) -> None:
    encounter = sent[0].encounter
    checkpoint, leaves = audit_log(device, encounter, server_key)
    assert sorted(leaves) == sorted(chunk.note.encode() for chunk in sent)
    info = get_json(device, f"/v1/encounters/{encounter}")
    assert info["log_size"] == len(sent)
    for stream in {chunk.stream for chunk in sent}:
        expected = sorted(c.seq for c in sent if c.stream == stream)
        assert info["streams"][stream] == {"seqs": expected, "final_seq": expected[-1]}
    first_receipt: dict[tuple[str, int], dict[str, Any]] = {}
    for chunk, _status, receipt in uploads:
        if chunk.encounter != encounter:
            continue
        # A duplicate gets the very receipt of the first upload, whichever thread won.
        same = first_receipt.setdefault((chunk.stream, chunk.seq), receipt)
        assert {k: v for k, v in receipt.items() if k != "received_at"} == \
               {k: v for k, v in same.items() if k != "received_at"}
        assert receipt["received_at"] == same["received_at"]
        verify_against_latest(device, receipt, chunk.note, server_key, checkpoint)
    for chunk in random.Random(7).sample(sent, min(len(sent), 12)):
        path = f"/v1/encounters/{encounter}/streams/{chunk.stream}/chunks/{chunk.seq}"
        assert device.call("GET", path).content == chunk.body


def bodies_are_in_the_configured_store(server: Gunicorn, sent: list[Sealed]) -> None:
    keys = {f"encounters/{c.encounter}/{c.stream}/{c.seq:08d}.age": c.body for c in sent}
    bucket = server.extra_env.get("SAFEHOLD_S3_BUCKET")
    if bucket is None:
        for key, body in keys.items():
            assert (server.data_dir / "blobs" / key).read_bytes() == body
        return
    assert not (server.data_dir / "blobs").exists() or not any(
        (server.data_dir / "blobs").rglob("*.age"))
    s3 = boto3.client("s3", endpoint_url=server.extra_env["SAFEHOLD_S3_ENDPOINT_URL"],
                      region_name="us-east-1")
    for key, body in keys.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def statuses_are_one_201_per_chunk(uploads: list[Upload]) -> None:
    created: dict[tuple[str, str, int], int] = {}
    for chunk, status, body in uploads:
        assert status in (200, 201), body
        key = (chunk.encounter, chunk.stream, chunk.seq)
        created[key] = created.get(key, 0) + (status == 201)
    assert set(created.values()) == {1}, "some chunk was created twice or never"


def test_threads_racing_into_one_encounter(gunicorn: Gunicorn) -> None:
    device = registered_device(gunicorn.url, gunicorn.name)
    encounter = device.new_encounter()
    sent = seal_many(device, encounter, {"log": 20, "audio": 40, "video": 40})
    # Every chunk once, and a third of them again, racing the original from another thread.
    jobs = [(device, chunk) for chunk in sent + sent[::3]]
    random.Random(1).shuffle(jobs)
    uploads = upload_all(jobs, threads=12)
    statuses_are_one_201_per_chunk(uploads)
    check_encounter(device, gunicorn.server_key(), sent, uploads)
    bodies_are_in_the_configured_store(gunicorn, sent)


def test_many_accounts_and_encounters_at_once(gunicorn: Gunicorn) -> None:
    devices = [registered_device(gunicorn.url, gunicorn.name) for _ in range(4)]
    per_encounter: list[tuple[Device, list[Sealed]]] = []
    for device in devices:
        for _ in range(3):
            encounter = device.new_encounter()
            per_encounter.append((device, seal_many(device, encounter,
                                                    {"log": 4, "audio": 8})))
    jobs = [(device, chunk) for device, sent in per_encounter for chunk in sent]
    random.Random(2).shuffle(jobs)
    uploads = upload_all(jobs, threads=16)
    statuses_are_one_201_per_chunk(uploads)
    server_key = gunicorn.server_key()
    for device, sent in per_encounter:
        check_encounter(device, server_key, sent, uploads)

