"""One storage suite, run over both drivers: local disk, and S3 against moto's standalone server
over HTTP on 127.0.0.1. Whatever a driver is, stored evidence is never overwritten and nothing
that failed its digest is ever stored."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from moto_s3 import moto_endpoint, new_bucket  # noqa: F401 - a fixture

from server.blobs.store import (
    BlobConflict,
    BlobDigestMismatch,
    BlobMissing,
    BlobRangeError,
    BlobStore,
    BlobStoreUnavailable,
    InvalidBlobKey,
    LocalBlobStore,
    S3BlobStore,
    chunk_key,
    make_blob_store,
)

ENCOUNTER = "5b0f6a8e-3c1d-4e4b-9a57-0d8f5f3f2a10"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    config: dict[str, Any] = {"BLOB_STORE": request.param, "DATA_DIR": tmp_path}
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        config.update(S3_BUCKET=new_bucket(endpoint), S3_ENDPOINT_URL=endpoint)
    return make_blob_store(config)


@pytest.fixture
def s3_store(request: pytest.FixtureRequest) -> S3BlobStore:
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3BlobStore(new_bucket(endpoint), endpoint_url=endpoint)


KEY = chunk_key(ENCOUNTER, "audio", 0)
BODY = os.urandom(70_000)


def test_chunk_key_is_the_agreed_layout() -> None:
    assert chunk_key(ENCOUNTER, "video", 42) == f"encounters/{ENCOUNTER}/video/00000042.age"


def test_put_then_get_returns_the_same_bytes(store: BlobStore) -> None:
    assert not store.exists(KEY)
    store.put(KEY, BODY, sha(BODY))
    assert store.exists(KEY)
    assert store.get(KEY) == BODY


def test_ranges_are_inclusive_and_clipped_at_the_end(store: BlobStore) -> None:
    store.put(KEY, BODY, sha(BODY))
    assert store.get_range(KEY, 0, 0) == BODY[:1]
    assert store.get_range(KEY, 100, 4195) == BODY[100:4196]
    assert store.get_range(KEY, len(BODY) - 10, len(BODY) + 500) == BODY[-10:]
    with pytest.raises(BlobRangeError):
        store.get_range(KEY, len(BODY), len(BODY) + 5)
    with pytest.raises(ValueError):
        store.get_range(KEY, 10, 9)


def test_missing_blob_is_reported_as_missing(store: BlobStore) -> None:
    assert not store.exists(KEY)
    with pytest.raises(BlobMissing):
        store.get(KEY)
    with pytest.raises(BlobMissing):
        store.get_range(KEY, 0, 10)


def test_same_bytes_again_is_a_no_op(store: BlobStore) -> None:
    store.put(KEY, BODY, sha(BODY))
    store.put(KEY, BODY, sha(BODY))
    assert store.get(KEY) == BODY


def test_different_bytes_in_a_taken_key_are_refused_and_the_original_kept(
        store: BlobStore) -> None:
    store.put(KEY, BODY, sha(BODY))
    other = BODY[:-1] + bytes([BODY[-1] ^ 1])
    with pytest.raises(BlobConflict):
        store.put(KEY, other, sha(other))
    assert store.get(KEY) == BODY


@pytest.mark.parametrize("announced", [sha(b"something else"), "ab" * 31, sha(BODY).upper(), ""],
                         ids=["another-body", "too-short", "upper-case", "empty"])
def test_digest_mismatch_stores_nothing(store: BlobStore, announced: str) -> None:
    with pytest.raises(BlobDigestMismatch):
        store.put(KEY, BODY, announced)
    assert not store.exists(KEY)
    # and the slot is still free for the honest bytes
    store.put(KEY, BODY, sha(BODY))
    assert store.get(KEY) == BODY


BAD_KEYS = ["", "../escape.age", "a/../../escape.age", "/etc/passwd", "a//b", "a/./b", "a/b/",
            ".hidden", "a/.tmp-1234", "a\\b", "a\x00b", "sp ace", "é", "x" * 600]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_unsafe_keys_are_refused_by_every_operation(store: BlobStore, bad: str,
                                                    tmp_path: Path) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    for call in (lambda: store.put(bad, b"x", sha(b"x")), lambda: store.get(bad),
                 lambda: store.get_range(bad, 0, 1), lambda: store.exists(bad),
                 lambda: store.delete(bad)):
        with pytest.raises(InvalidBlobKey):
            call()
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_delete_is_idempotent_and_frees_the_key(store: BlobStore) -> None:
    store.put(KEY, BODY, sha(BODY))
    store.delete(KEY)
    store.delete(KEY)
    assert not store.exists(KEY)
    with pytest.raises(BlobMissing):
        store.get(KEY)
    store.put(KEY, b"new", sha(b"new"))
    assert store.get(KEY) == b"new"


def test_empty_blob_round_trips(store: BlobStore) -> None:
    store.put(KEY, b"", sha(b""))
    assert store.exists(KEY) and store.get(KEY) == b""


def test_racing_identical_puts_all_succeed(store: BlobStore) -> None:
    errors: list[BaseException] = []

    def put() -> None:
        try:
            store.put(KEY, BODY, sha(BODY))
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.get(KEY) == BODY


# --- local driver only -------------------------------------------------------------------------

def test_local_racing_different_puts_have_exactly_one_winner(tmp_path: Path) -> None:
    # Only the local driver: moto's If-None-Match check is not atomic across its threads (real
    # S3's is), so this race would test moto rather than us.
    store = LocalBlobStore(tmp_path)
    bodies = [os.urandom(50_000) for _ in range(8)]
    outcomes: dict[int, str] = {}
    barrier = threading.Barrier(len(bodies))

    def put(i: int) -> None:
        barrier.wait()
        try:
            store.put(KEY, bodies[i], sha(bodies[i]))
            outcomes[i] = "stored"
        except BlobConflict:
            outcomes[i] = "conflict"

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, outcome in outcomes.items() if outcome == "stored"]
    assert len(winners) == 1 and len(outcomes) == len(bodies)
    assert store.get(KEY) == bodies[winners[0]]
    assert not list(tmp_path.rglob(".tmp-*")), "a put left its temp file behind"


def test_local_blob_lives_at_its_key_under_the_root(tmp_path: Path) -> None:
    store = make_blob_store({"BLOB_STORE": "local", "DATA_DIR": str(tmp_path)})
    store.put(KEY, BODY, sha(BODY))
    assert (tmp_path / "blobs" / KEY).read_bytes() == BODY


def test_local_crash_leftovers_are_invisible_and_swept(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put(KEY, BODY, sha(BODY))
    folder = (tmp_path / KEY).parent
    # What a kill -9 in the middle of a put leaves: a partial temp file beside the blobs.
    stale, young = folder / ".tmp-0000000000000000", folder / ".tmp-1111111111111111"
    stale.write_bytes(BODY[:1000])
    young.write_bytes(BODY[:1000])
    old = time.time() - 7200
    os.utime(stale, (old, old))
    other_key = chunk_key(ENCOUNTER, "audio", 1)
    assert not store.exists(other_key)
    assert store.sweep_temp_files(older_than_seconds=3600) == 1
    assert not stale.exists() and young.exists()
    assert store.get(KEY) == BODY


def test_local_a_blob_cannot_be_turned_into_a_folder(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("a/b", b"x", sha(b"x"))
    with pytest.raises(BlobConflict):
        store.put("a/b/c", b"y", sha(b"y"))
    with pytest.raises(BlobConflict):
        store.put("a", b"z", sha(b"z"))
    assert store.get("a/b") == b"x"


def test_make_blob_store_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="local' or 's3"):
        make_blob_store({"BLOB_STORE": "ftp", "DATA_DIR": tmp_path})
    with pytest.raises(ValueError, match="S3_BUCKET"):
        make_blob_store({"BLOB_STORE": "s3", "DATA_DIR": tmp_path})


# --- S3 driver only ----------------------------------------------------------------------------

def test_s3_every_put_carries_its_sha256_checksum(s3_store: S3BlobStore) -> None:
    s3_store.put(KEY, BODY, sha(BODY))
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=KEY, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(BODY).digest()).decode()


@pytest.mark.usefixtures("moto_endpoint")  # for its dummy AWS credentials
def test_s3_unreachable_is_reported_as_unavailable() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = boto3.client("s3", endpoint_url=dead, region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    store = S3BlobStore("nowhere", endpoint_url=dead, client=client)
    with pytest.raises(BlobStoreUnavailable):
        store.put(KEY, BODY, sha(BODY))
    with pytest.raises(BlobStoreUnavailable):
        store.get(KEY)


def test_s3_presigned_put_is_pinned_and_write_once(s3_store: S3BlobStore) -> None:
    presigned = s3_store.presign_put(KEY, len(BODY), sha(BODY), expires=300)
    signed = presigned.url.split("X-Amz-SignedHeaders=")[1].split("&")[0]
    # Real S3 refuses any request whose signed headers differ from these (SignatureDoesNotMatch).
    assert set(signed.replace("%3B", ";").split(";")) >= {
        "content-length", "if-none-match", "x-amz-checksum-sha256"}
    first = requests.put(presigned.url, data=BODY, headers=presigned.headers, timeout=10)
    assert first.status_code == 200
    s3_store.confirm_upload(KEY, sha(BODY))

    other = os.urandom(len(BODY))  # same length, so only write-once can stop it
    again = requests.put(presigned.url, data=other, headers=presigned.headers, timeout=10)
    assert again.status_code == 412
    assert s3_store.get(KEY) == BODY


def test_s3_presigned_upload_of_wrong_bytes_is_caught_at_commit(s3_store: S3BlobStore) -> None:
    # moto does not verify x-amz-checksum-sha256 nor the signature, so it stores these wrong
    # bytes where real S3 would answer 400 BadDigest. confirm_upload is the check that holds
    # either way: the commit refuses, and the object is removed so the honest upload can land.
    presigned = s3_store.presign_put(KEY, len(BODY), sha(BODY))
    wrong = os.urandom(len(BODY))
    requests.put(presigned.url, data=wrong, headers=presigned.headers, timeout=10)
    with pytest.raises(BlobDigestMismatch):
        s3_store.confirm_upload(KEY, sha(BODY))
    assert not s3_store.exists(KEY)
    fresh = s3_store.presign_put(KEY, len(BODY), sha(BODY))
    assert requests.put(fresh.url, data=BODY, headers=fresh.headers, timeout=10).ok
    s3_store.confirm_upload(KEY, sha(BODY))
    assert s3_store.get(KEY) == BODY
