"""`safehold witness serve` as a real subprocess on loopback, and a tiny log to feed it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from crypto.checkpoint import Checkpoint, sign_checkpoint
from crypto.cosignature import cosign, format_add_checkpoint
from crypto.merkle import consistency_proof, leaf_hash, root_hash
from crypto.signing import generate_signing_key, split_note, verifier_key
from tests.helpers import PYTHON, ROOT, free_port


def witness_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    return subprocess.run([PYTHON, "-m", "cli.main", "witness", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def witness_keygen(state: Path, name: str) -> str:
    done = witness_cli("keygen", "--state", str(state), "--name", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class WitnessProcess:
    def __init__(self, state: Path, log_keys: list[str], port: int | None = None,
                 name: str | None = None) -> None:
        self.state = state
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name or f"127.0.0.1:{self.port}"
        self.log_keys = log_keys
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = state.parent / f"{state.name}-witness-{self.port}.log"

    def start(self, timeout: float = 30) -> WitnessProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
        args = [PYTHON, "-m", "cli.main", "witness", "serve", "--state", str(self.state),
                "--host", "127.0.0.1", "--port", str(self.port), "--name", self.name]
        for key in self.log_keys:
            args += ["--log-key", key]
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log_path.open("ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"witness exited: {self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("witness did not start")

    @property
    def vkey(self) -> str:
        return str(requests.get(self.url + "/", timeout=5).json()["vkey"])

    def add(self, body: bytes) -> requests.Response:
        return requests.post(self.url + "/add-checkpoint", data=body, timeout=10)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=10)


@dataclass
class ToyLog:
    """A log the test controls (signed with crypto/), for talking to a witness directly."""

    name: str = "127.0.0.1:1"
    signing_key: str = ""
    leaves: list[bytes] = field(default_factory=list)
    origin: str = ""

    def __post_init__(self) -> None:
        self.signing_key = self.signing_key or generate_signing_key(self.name)
        self.origin = self.origin or f"{self.name}/safehold/encounter/toy"

    @property
    def vkey(self) -> str:
        return verifier_key(self.signing_key)

    def append(self, *datas: bytes) -> None:
        self.leaves.extend(datas)

    def note(self, size: int | None = None) -> str:
        size = len(self.leaves) if size is None else size
        root = root_hash([leaf_hash(d) for d in self.leaves[:size]])
        return sign_checkpoint(Checkpoint(self.origin, size, root), self.signing_key)

    def body(self, old: int, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        hashes = [leaf_hash(d) for d in self.leaves[:size]]
        proof = consistency_proof(old, hashes) if 0 < old < size else []
        return format_add_checkpoint(old, proof, self.note(size))


class ColludingWitness:
    """A witness that lies for the operator: it cosigns, with its real key, whatever checkpoint
    it is sent (a shrunk or forked log too), and keeps no state. In-process, on loopback."""

    def __init__(self, signing_key_file: Path, port: int) -> None:
        key = signing_key_file.read_text().strip()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                note = body.decode().split("\n\n", 1)[1]
                line = cosign(split_note(note)[0], key, int(time.time())).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(line)))
                self.end_headers()
                self.wfile.write(line)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
