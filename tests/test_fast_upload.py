"""Ordinary chunk uploads skip Flask's dispatch (server/fast_upload.py); the answers must not
depend on which path served them. Each request is sent once through the app as deployed (fast
path) and once straight to Flask's route, against the same real SQLite store and blob folder."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import DEVICE_TIME, Device, b64, chunk_path
from werkzeug.test import Client, TestResponse

from crypto.descriptor import describe_chunk, sign_descriptor
from crypto.slot import Slot
from schemas.statements import login_statement
from server.app import create_app
from server.fast_upload import ChunkUploadFastPath

NAME = "localhost:8000"
MAX_CHUNK_BYTES = 2048  # sealed test chunks are a few hundred bytes


class Paths:
    def __init__(self, data_dir: Path) -> None:
        app = create_app({"DATA_DIR": str(data_dir), "PUBLIC_URL": f"http://{NAME}",
                          "MAX_CHUNK_BYTES": MAX_CHUNK_BYTES})
        assert isinstance(app.wsgi_app, ChunkUploadFastPath)
        self.fast, self.flask = Client(app), Client(app.wsgi_app.flask_wsgi)
        self.device = Device(f"http://{NAME}", NAME)
        assert self.fast.post("/v1/accounts", json=self.device.registration()).status_code == 201
        challenge = self.fast.post("/v1/auth/challenge",
                                   json={"device_id": self.device.device_id}).json["challenge"]
        signature = self.device.sign(login_statement(NAME, self.device.device_id, challenge))
        self.token = self.fast.post("/v1/auth/token", json={
            "device_id": self.device.device_id, "challenge": challenge,
            "signature": signature}).json["token"]
        self.encounter = str(uuid.uuid4())
        assert self.fast.put(f"/v1/encounters/{self.encounter}", headers=self.auth(),
                             json={"started_at": "2026-11-28T03:30:00.000Z"}).status_code == 201

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def both(self, seq: int, body: bytes, note: str, **headers: str) -> list[TestResponse]:
        sent = {**self.auth(), "Content-Type": "application/octet-stream",
                "Safehold-Descriptor": b64(note.encode("utf-8")), **headers}
        path = chunk_path(self.encounter, "video", seq)
        return [client.put(path, data=body, headers=sent) for client in (self.fast, self.flask)]


def same_answer(responses: list[TestResponse]) -> tuple[int, Any]:
    fast, flask = responses
    assert (fast.status_code, fast.get_data(), fast.headers.get("Content-Type")) == \
        (flask.status_code, flask.get_data(), flask.headers.get("Content-Type"))
    return fast.status_code, fast.json


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "data")


def test_a_stored_chunk_gets_the_same_receipt_from_both_paths(paths: Paths) -> None:
    body, note = paths.device.seal(paths.encounter, "video", 0)
    fast = paths.fast.put(chunk_path(paths.encounter, "video", 0), data=body, headers={
        **paths.auth(), "Safehold-Descriptor": b64(note.encode("utf-8"))})
    assert fast.status_code == 201
    status, receipt = same_answer(paths.both(0, body, note))
    assert (status, receipt) == (200, fast.json)


@pytest.mark.parametrize("fault", ["digest", "slot", "signature", "token", "taken",
                                   "oversize"])
def test_refusals_are_the_same_from_both_paths(paths: Paths, fault: str) -> None:
    body, note = paths.device.seal(paths.encounter, "video", 1)
    headers: dict[str, str] = {}
    if fault == "taken":
        assert paths.both(1, body, note)[0].status_code == 201
        body, note = paths.device.seal(paths.encounter, "video", 1)  # other bytes, same slot
    if fault == "digest":
        body = body[:-1] + bytes([body[-1] ^ 1])
    elif fault == "slot":  # an age file sealed for seq 2, described and signed as seq 1
        body, _ = paths.device.seal(paths.encounter, "video", 2)
        note = sign_descriptor(describe_chunk(body, Slot(paths.encounter, "video", 1, False),
                                              DEVICE_TIME), paths.device.signing_key)
    elif fault == "signature":
        note = Device(paths.device.url, NAME).seal(paths.encounter, "video", 1)[1]
    elif fault == "token":
        headers["Authorization"] = "Bearer forged.token"
    elif fault == "oversize":  # beyond the chunk limit and Flask's own body limit alike
        body = bytes(64 * 1024 + 2)
    status, error = same_answer(paths.both(1, body, note, **headers))
    expected = {"digest": (400, "digest_mismatch"), "slot": (400, "slot_mismatch"),
                "signature": (400, "bad_signature"), "token": (401, "invalid_token"),
                "taken": (409, "chunk_exists"), "oversize": (413, "too_large")}[fault]
    assert (status, error["error"]["code"]) == expected
