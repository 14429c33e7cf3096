"""Reusable pieces for tests that talk to a real Safehold server over HTTP.

- `ServerProcess`: `safehold serve` (or gunicorn) as a subprocess on a free loopback port, with
  its own data folder and SAFEHOLD_PUBLIC_URL set to the URL it listens on.
- `Device`: a phone's keys and account, registered and logged in through the HTTP API with
  requests and crypto/ only (no sync/ code), plus `seal` / `upload` for chunks.
- `evidence(data_dir)`: every stored blob and metadata row, to show a refusal changed nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from pgkit import rows_of, server_env

from crypto import age
from crypto.checkpoint import Checkpoint, open_checkpoint, verify_leaf_in_checkpoint
from crypto.descriptor import describe_chunk, sign_descriptor
from crypto.signing import generate_signing_key, sign_raw, verifier_key
from crypto.slot import Slot
from schemas.statements import add_device_statement, login_statement, register_statement

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
DEVICE_TIME = "2026-11-28T03:30:01.123Z"
STARTED_AT = "2026-11-28T03:30:00.000Z"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A Safehold server in a subprocess. `kind` is "serve" (werkzeug) or "gunicorn"."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None,
                 kind: str = "serve", port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = f"127.0.0.1:{self.port}"
        self.kind = kind
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.port}.log"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
        env.update({"SAFEHOLD_DATA_DIR": str(self.data_dir), "SAFEHOLD_PUBLIC_URL": self.url,
                     "PYTHONUNBUFFERED": "1", **server_env(self.data_dir)})
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        if self.kind == "gunicorn":
            return [PYTHON, "-m", "gunicorn", "--config", "server/gunicorn_conf.py",
                    "--bind", self.name, "--workers", "2", "server.wsgi:app"]
        return [PYTHON, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port",
                str(self.port)]

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=self.environment(),
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/v1/server", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or busy starting
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def server_key(self) -> str:
        return str(requests.get(self.url + "/v1/server", timeout=5).json()["server_key"])


@dataclass
class Device:
    """One phone: its Ed25519 key, account and recovery identity, logged in over HTTP."""

    url: str
    server_name: str
    account_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    device_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    signing_key: str = ""
    recovery_identity: str = field(default_factory=age.generate_identity)
    token: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        if not self.signing_key:
            # Named as every Safehold device key is (docs/protocol.md §2.1): bundles name a
            # device by its key.
            self.signing_key = generate_signing_key(f"device-{self.device_id}")

    @property
    def device_key(self) -> str:
        return verifier_key(self.signing_key)

    @property
    def recovery_recipient(self) -> str:
        return age.recipient_of(self.recovery_identity)

    def sign(self, statement: bytes) -> str:
        return b64(sign_raw(statement, self.signing_key))

    # -- account and login ------------------------------------------------------------------
    def registration(self) -> dict[str, str]:
        statement = register_statement(self.server_name, self.account_id, self.device_id,
                                       self.recovery_recipient)
        return {"account_id": self.account_id, "device_id": self.device_id,
                "device_key": self.device_key, "recovery_recipient": self.recovery_recipient,
                "signature": self.sign(statement)}

    def register(self) -> requests.Response:
        return self.session.post(self.url + "/v1/accounts", json=self.registration(), timeout=10)

    def join(self, code: str) -> requests.Response:
        """Join an existing account with an add-device code (this device's keys)."""
        body = {"code": code, "device_id": self.device_id, "device_key": self.device_key,
                "signature": self.sign(add_device_statement(self.server_name, self.device_id,
                                                            code))}
        return self.session.post(self.url + "/v1/devices", json=body, timeout=10)

    def challenge(self) -> str:
        response = self.session.post(self.url + "/v1/auth/challenge",
                                     json={"device_id": self.device_id}, timeout=10)
        assert response.status_code == 200, response.text
        return str(response.json()["challenge"])

    def login_request(self, challenge: str, signature: str | None = None) -> requests.Response:
        signature = signature or self.sign(login_statement(self.server_name, self.device_id,
                                                           challenge))
        return self.session.post(self.url + "/v1/auth/token", timeout=10, json={
            "device_id": self.device_id, "challenge": challenge, "signature": signature})

    def login(self) -> Device:
        response = self.login_request(self.challenge())
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        return self

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        return self.session.request(method, self.url + path, headers=headers, timeout=30,
                                    **kwargs)

    # -- encounters and chunks --------------------------------------------------------------
    def new_encounter(self, started_at: str = STARTED_AT) -> str:
        encounter = str(uuid.uuid4())
        response = self.call("PUT", f"/v1/encounters/{encounter}",
                             json={"started_at": started_at})
        assert response.status_code == 201, response.text
        return encounter

    def seal(self, encounter: str, stream: str, seq: int, final: bool = False,
             payload: bytes | None = None) -> tuple[bytes, str]:
        """An age file with its slot stanza and this device's signed descriptor note."""
        slot = Slot(encounter, stream, seq, final)
        payload = payload if payload is not None else os.urandom(64)
        body = age.encrypt(payload, [self.recovery_recipient], slot=slot)
        return body, sign_descriptor(describe_chunk(body, slot, DEVICE_TIME), self.signing_key)

    def put_chunk(self, encounter: str, stream: str, seq: int, body: bytes, note: str,
                  **headers: str) -> requests.Response:
        return self.call(
            "PUT", chunk_path(encounter, stream, seq), data=body,
            headers={"Content-Type": "application/octet-stream",
                     "Safehold-Descriptor": b64(note.encode("utf-8")), **headers},
        )

    def upload(self, encounter: str, stream: str, seq: int, final: bool = False,
               payload: bytes | None = None) -> tuple[dict[str, Any], bytes, str]:
        body, note = self.seal(encounter, stream, seq, final, payload)
        response = self.put_chunk(encounter, stream, seq, body, note)
        assert response.status_code == 201, response.text
        return response.json(), body, note


def chunk_path(encounter: str, stream: str, seq: int) -> str:
    return f"/v1/encounters/{encounter}/streams/{stream}/chunks/{seq}"


def registered_device(url: str, server_name: str) -> Device:
    device = Device(url, server_name)
    response = device.register()
    assert response.status_code == 201, response.text
    return device.login()


def verify_receipt(receipt: Mapping[str, Any], note: str, server_key: str) -> Checkpoint:
    """Check a receipt with crypto/ alone: signed checkpoint, then the leaf's inclusion proof."""
    checkpoint = open_checkpoint(str(receipt["checkpoint"]), server_key)
    assert checkpoint.size == receipt["tree_size"]
    proof = [unb64(h) for h in receipt["inclusion_proof"]]
    verify_leaf_in_checkpoint(checkpoint, note.encode("utf-8"), int(receipt["leaf_index"]), proof)
    return checkpoint


def error_of(response: requests.Response) -> tuple[int, str]:
    """(status, code) of an error response, after checking it is exactly the envelope."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "details"}, body
    assert body["error"]["message"], body
    return response.status_code, str(body["error"]["code"])


EVIDENCE_TABLES = ("accounts", "devices", "encounters", "chunks", "log_leaves", "checkpoints",
                   "changes", "device_invitations")


def evidence(data_dir: Path) -> dict[str, Any]:
    """Every blob (path -> SHA-256) and every metadata row a refusal must leave untouched."""
    blobs_root = Path(data_dir) / "blobs"
    blobs = {
        str(path.relative_to(blobs_root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(blobs_root.rglob("*")) if path.is_file()
    } if blobs_root.exists() else {}
    return {"blobs": blobs, "rows": rows_of(data_dir, EVIDENCE_TABLES)}
