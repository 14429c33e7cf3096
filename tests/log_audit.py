"""What a verifier checks after heavy or faulty ingest, using only HTTP and crypto/.

Shared by the concurrency and crash tests: gunicorn under test (several workers), the log
audit of one encounter, and sending chunks without the single-threaded assumptions of helpers.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from helpers import PYTHON, ROOT, Device, ServerProcess, unb64, verify_receipt

from crypto.checkpoint import Checkpoint, open_checkpoint, verify_checkpoints_consistent
from crypto.merkle import leaf_hash, root_hash


class Gunicorn(ServerProcess):
    """Safehold under gunicorn with the Procfile's config file and `workers` processes."""

    def __init__(self, data_dir: Path, workers: int = 3, port: int | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        env = {"SAFEHOLD_RATE_PER_MINUTE": "1000000", **(env or {})}
        super().__init__(data_dir, env=env, kind="gunicorn", port=port)
        self.workers = workers

    def command(self) -> list[str]:
        return [PYTHON, "-m", "gunicorn", "--config", "server/gunicorn_conf.py",
                "--bind", self.name, "--workers", str(self.workers), "server.wsgi:app"]

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start and wait until a worker answers. The master accepts connections before its
        workers have booted, so a slow boot shows up as a read timeout, not a refusal."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=self.environment(),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n"
                                   f"{self.output()}")
            try:
                if requests.get(self.url + "/v1/server", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer in {timeout}s:\n{self.output()}")


def clone(device: Device) -> Device:
    """The same device with its own HTTP session, for use from another thread."""
    return dataclasses.replace(device, session=requests.Session())


@dataclass(frozen=True)
class Sealed:
    encounter: str
    stream: str
    seq: int
    body: bytes
    note: str


def seal_many(device: Device, encounter: str, streams: dict[str, int],
              payload_bytes: int = 1024) -> list[Sealed]:
    """Every chunk of the given streams (name -> count), the last of each one final."""
    import os

    sealed = []
    for stream, count in streams.items():
        for seq in range(count):
            body, note = device.seal(encounter, stream, seq, final=seq == count - 1,
                                     payload=os.urandom(payload_bytes))
            sealed.append(Sealed(encounter, stream, seq, body, note))
    return sealed


def get_json(device: Device, path: str) -> dict[str, Any]:
    response = device.call("GET", path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return dict(response.json())


def audit_log(device: Device, encounter: str, server_key: str) -> tuple[Checkpoint, list[bytes]]:
    """The latest checkpoint and every leaf, after checking that the checkpoint signs exactly
    those leaves and that no leaf appears twice."""
    latest = get_json(device, f"/v1/encounters/{encounter}/log/checkpoint")
    checkpoint = open_checkpoint(latest["checkpoint"], server_key)
    assert checkpoint.size == latest["tree_size"]
    leaves: list[bytes] = []
    while len(leaves) < checkpoint.size:
        page = get_json(device, f"/v1/encounters/{encounter}/log/leaves"
                                f"?start={len(leaves)}&end={checkpoint.size}")
        assert page["leaves"], "the log claims more leaves than it serves"
        for leaf in page["leaves"]:
            assert leaf["index"] == len(leaves)
            leaves.append(unb64(leaf["data"]))
    assert root_hash([leaf_hash(leaf) for leaf in leaves]) == checkpoint.root
    assert len(set(leaves)) == len(leaves), "a descriptor was logged twice"
    return checkpoint, leaves


def verify_against_latest(device: Device, receipt: Mapping[str, Any], note: str,
                          server_key: str, latest: Checkpoint) -> None:
    """The receipt's inclusion proof, then a consistency proof from its checkpoint to `latest`."""
    old = verify_receipt(receipt, note, server_key)
    if old.size == latest.size:
        assert old == latest
        return
    proof = get_json(device, f"/v1/encounters/{receipt['encounter_id']}/log/consistency"
                             f"?first={old.size}&second={latest.size}")["proof"]
    verify_checkpoints_consistent(old, latest, [unb64(h) for h in proof])
