"""Direct uploads over HTTP: a phone PUTs a chunk body straight to moto's S3 server on a
presigned URL, then commits it; the API re-reads and re-hashes the object before it answers
with a receipt of the same form as the proxied PUT's. moto stores whatever a presigned PUT
sends (it checks neither the signature's pinned checksum nor the length), so it plays the
hostile phone's S3 here, and the commit's own checks are what these tests prove."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from helpers import (
    Device,
    ServerProcess,
    b64,
    chunk_path,
    error_of,
    evidence,
    free_port,
    registered_device,
    verify_receipt,
)
from moto_s3 import moto_endpoint, new_bucket  # noqa: F401 - a fixture
from synckit import audit, cli, register


class S3Server:
    def __init__(self, server: ServerProcess, endpoint: str, bucket: str) -> None:
        self.server, self.endpoint, self.bucket = server, endpoint, bucket
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def objects(self) -> dict[str, str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {item["Key"]: hashlib.sha256(self.s3.get_object(
            Bucket=self.bucket, Key=item["Key"])["Body"].read()).hexdigest() for item in listing}

    def evidence(self) -> dict[str, Any]:
        return {"rows": evidence(self.server.data_dir)["rows"], "s3": self.objects()}


@pytest.fixture(scope="module")
def direct(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = new_bucket(endpoint)
    env = {"SAFEHOLD_BLOB_STORE": "s3", "SAFEHOLD_S3_BUCKET": bucket,
           "SAFEHOLD_S3_ENDPOINT_URL": endpoint, "SAFEHOLD_DIRECT_UPLOADS": "1"}
    server = ServerProcess(tmp_path_factory.mktemp("direct") / "data", env).start()
    yield S3Server(server, endpoint, bucket)
    server.stop()


@pytest.fixture()
def phone(direct: S3Server) -> Device:
    return registered_device(direct.server.url, direct.server.name)


def descriptor_header(note: str) -> dict[str, str]:
    return {"Safehold-Descriptor": b64(note.encode("utf-8"))}


def presign(phone: Device, encounter: str, seq: int, note: str) -> dict[str, Any]:
    response = phone.call("POST", chunk_path(encounter, "audio", seq) + "/direct",
                          headers=descriptor_header(note))
    assert response.status_code == 200, response.text
    return dict(response.json())


def put_to_s3(presigned: dict[str, Any], body: bytes) -> requests.Response:
    headers = {k: v for k, v in presigned["headers"].items() if k != "Content-Length"}
    return requests.put(presigned["url"], data=body, headers=headers, timeout=10)


def commit(phone: Device, encounter: str, seq: int, note: str) -> requests.Response:
    return phone.call("POST", chunk_path(encounter, "audio", seq) + "/commit",
                      headers=descriptor_header(note))


def test_server_info_offers_direct_uploads(direct: S3Server) -> None:
    info = requests.get(direct.server.url + "/v1/server", timeout=5).json()
    assert info["direct_uploads"] is True


def test_presigned_put_then_commit_gives_the_proxied_receipt_form(
        direct: S3Server, phone: Device) -> None:
    encounter = phone.new_encounter()
    body, note = phone.seal(encounter, "audio", 0)
    presigned = presign(phone, encounter, 0, note)
    assert presigned["method"] == "PUT"
    assert presigned["headers"]["Content-Length"] == str(len(body))
    assert presigned["headers"]["If-None-Match"] == "*"
    assert presigned["headers"]["x-amz-checksum-sha256"] == b64(hashlib.sha256(body).digest())
    assert put_to_s3(presigned, body).status_code == 200
    first = commit(phone, encounter, 0, note)
    assert first.status_code == 201, first.text
    receipt = first.json()
    verify_receipt(receipt, note, direct.server.server_key())
    assert receipt["leaf_index"] == 0
    # A proxied upload of the next chunk: the same receipt fields, the same log.
    proxied, _body, proxied_note = phone.upload(encounter, "audio", 1)
    assert set(proxied) == set(receipt)
    assert proxied["leaf_index"] == 1
    verify_receipt(proxied, proxied_note, direct.server.server_key())
    # The chunk reads back byte for byte through the API.
    assert phone.call("GET", chunk_path(encounter, "audio", 0)).content == body
    # A replayed commit (and a repeated PUT, which S3 refuses as existing) changes nothing.
    before = direct.evidence()
    assert put_to_s3(presign(phone, encounter, 0, note), body).status_code == 412
    again = commit(phone, encounter, 0, note)
    assert again.status_code == 200
    assert again.json() == receipt
    assert direct.evidence() == before


def test_commit_without_upload_is_refused_and_stores_nothing(
        direct: S3Server, phone: Device) -> None:
    encounter = phone.new_encounter()
    _body, note = phone.seal(encounter, "audio", 0)
    presign(phone, encounter, 0, note)
    before = direct.evidence()
    response = commit(phone, encounter, 0, note)
    assert error_of(response) == (409, "upload_missing")
    assert "upload the body" in response.json()["error"]["message"]
    assert direct.evidence() == before


@pytest.mark.parametrize("tamper,code", [
    (lambda body: b"x" * len(body), "digest_mismatch"),  # same length, not an age file
    (lambda body: b"x" * (len(body) + 7), "size_mismatch"),
    (lambda body: b"x" * (2 * 1024 * 1024 + 1), "size_mismatch"),  # beyond any chunk
])
def test_garbage_in_s3_is_refused_and_discarded(direct: S3Server, phone: Device,
                                                tamper: Any, code: str) -> None:
    encounter = phone.new_encounter()
    body, note = phone.seal(encounter, "audio", 0)
    before = direct.evidence()
    # moto takes a presigned PUT whose body disagrees with the pinned checksum and length.
    assert put_to_s3(presign(phone, encounter, 0, note), tamper(body)).status_code == 200
    response = commit(phone, encounter, 0, note)
    assert error_of(response) == (400, code)
    assert direct.evidence() == before  # nothing in the log, the bad object deleted
    # The honest body can still be uploaded and committed afterwards.
    assert put_to_s3(presign(phone, encounter, 0, note), body).status_code == 200
    assert commit(phone, encounter, 0, note).status_code == 201


def test_another_chunk_for_the_slot_is_never_deleted(direct: S3Server, phone: Device) -> None:
    """Bytes that are a chunk of this very slot may be another upload's, committed at this
    moment: a commit naming other bytes is refused and leaves them where they are."""
    encounter = phone.new_encounter()
    body, note = phone.seal(encounter, "audio", 0)
    other, other_note = phone.seal(encounter, "audio", 0)
    assert put_to_s3(presign(phone, encounter, 0, note), body).status_code == 200
    before = direct.evidence()
    assert error_of(commit(phone, encounter, 0, other_note)) == (409, "chunk_exists")
    assert error_of(phone.put_chunk(encounter, "audio", 0, other, other_note)) == \
        (409, "chunk_exists")
    assert direct.evidence() == before
    assert commit(phone, encounter, 0, note).status_code == 201


def test_a_replaced_object_after_commit_never_changes_the_receipt(
        direct: S3Server, phone: Device) -> None:
    encounter = phone.new_encounter()
    body, note = phone.seal(encounter, "audio", 0)
    put_to_s3(presign(phone, encounter, 0, note), body)
    receipt = commit(phone, encounter, 0, note).json()
    other_body, other_note = phone.seal(encounter, "audio", 0)  # other bytes, same slot
    response = phone.call("POST", chunk_path(encounter, "audio", 0) + "/direct",
                          headers=descriptor_header(other_note))
    assert error_of(response) == (409, "chunk_exists")
    before = direct.evidence()
    assert error_of(commit(phone, encounter, 0, other_note)) == (409, "chunk_exists")
    assert direct.evidence() == before
    assert commit(phone, encounter, 0, note).json() == receipt
    assert other_body != body


def test_someone_elses_encounter_is_not_found(direct: S3Server, phone: Device) -> None:
    owner = registered_device(direct.server.url, direct.server.name)
    encounter = owner.new_encounter()
    body, note = owner.seal(encounter, "audio", 0)
    put_to_s3(presign(owner, encounter, 0, note), body)
    mine = phone.new_encounter()
    before = direct.evidence()
    for action in ("/direct", "/commit"):
        response = phone.call("POST", chunk_path(encounter, "audio", 0) + action,
                              headers=descriptor_header(note))
        assert error_of(response) == (404, "not_found"), action
    # Signed by the owner's device, not the caller's: refused even on the caller's own slot.
    _body, forged = owner.seal(mine, "audio", 0)
    response = phone.call("POST", chunk_path(mine, "audio", 0) + "/direct",
                          headers=descriptor_header(forged))
    assert error_of(response) == (400, "bad_signature")
    assert direct.evidence() == before


def test_a_server_without_s3_refuses_direct_uploads(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        phone = registered_device(server.url, server.name)
        assert requests.get(server.url + "/v1/server", timeout=5).json()["direct_uploads"] \
            is False
        encounter = phone.new_encounter()
        _body, note = phone.seal(encounter, "audio", 0)
        before = evidence(server.data_dir)
        response = phone.call("POST", chunk_path(encounter, "audio", 0) + "/direct",
                              headers=descriptor_header(note))
        assert error_of(response) == (404, "direct_uploads_off")
        assert evidence(server.data_dir) == before
    finally:
        server.stop()


def access_lines(server: ServerProcess, encounter: str) -> list[str]:
    """"METHOD path status" of every request the server logged for this encounter's chunks."""
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    return [line["message"] for line in lines if line.get("logger") == "safehold.access"
            and f"/v1/encounters/{encounter}/streams/" in line.get("path", "")]


def record(direct: S3Server, state: Path, env: dict[str, str] | None = None) -> tuple[str, int]:
    register(state, direct.server.url)
    media = state.parent / "media.bin"
    media.write_bytes(os.urandom(20_000))
    done = cli(state, "record", str(media), "--stream", "audio", "--chunk-bytes", "4000",
               env=env)
    assert done.returncode == 0, done.stderr
    outcome = audit(state, direct.server.url)
    assert outcome.clean, outcome
    return done.stdout.strip().splitlines()[-1], sum(outcome.chunk_count.values())


def test_device_record_sends_bodies_straight_to_s3(direct: S3Server, tmp_path: Path) -> None:
    encounter, chunks = record(direct, tmp_path / "phone")
    lines = access_lines(direct.server, encounter)
    commits = [line for line in lines if line.startswith("POST") and "/commit 201" in line]
    assert len(commits) == chunks >= 5
    assert not [line for line in lines if line.startswith("PUT")]  # no body through the API
    keys = [key for key in direct.objects() if key.startswith(f"encounters/{encounter}/")]
    assert len(keys) == chunks


def test_device_record_falls_back_to_the_api_when_s3_is_unreachable(
        direct: S3Server, tmp_path: Path) -> None:
    # A second node on the same bucket signs URLs for S3 as `localhost`; the phone reaches
    # 127.0.0.1 (the API) directly and everything else only through a proxy that is not there.
    endpoint = direct.endpoint.replace("127.0.0.1", "localhost")
    env = {"SAFEHOLD_BLOB_STORE": "s3", "SAFEHOLD_S3_BUCKET": direct.bucket,
           "SAFEHOLD_S3_ENDPOINT_URL": endpoint, "SAFEHOLD_DIRECT_UPLOADS": "1"}
    node = S3Server(ServerProcess(tmp_path / "data", env).start(), endpoint, direct.bucket)
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        encounter, chunks = record(node, tmp_path / "phone", {
            "HTTP_PROXY": dead, "http_proxy": dead, "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1"})
        lines = access_lines(node.server, encounter)
    finally:
        node.server.stop()
    proxied = [line for line in lines if line.startswith("PUT") and line.endswith(" 201")]
    assert len(proxied) == chunks >= 5
    # The first chunk tried S3 (signed URL), failed, and the route paused: no commits at all.
    assert not [line for line in lines if "/commit" in line]
    assert [line for line in lines if "/direct 200" in line]


def test_direct_uploads_without_s3_stop_the_server_before_it_starts(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"SAFEHOLD_DIRECT_UPLOADS": "1"})
    with pytest.raises(RuntimeError) as refused:
        server.start(timeout=30)
    assert "SAFEHOLD_DIRECT_UPLOADS=1 needs SAFEHOLD_BLOB_STORE=s3" in str(refused.value)
    assert server.proc is not None and server.proc.returncode != 0
