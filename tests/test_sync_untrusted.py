"""A server that lies in its receipts is reported and not trusted.

A small real HTTP proxy sits in front of a real server and rewrites the receipt JSON of one chunk
(both the PUT answer and `GET .../receipt`): once with a broken inclusion proof, once with a
checkpoint over a forked history, signed with the server's own key (a compromised server).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from crypto.checkpoint import Checkpoint, encounter_origin, sign_checkpoint
from crypto.merkle import inclusion_proof, leaf_hash, root_hash
from tests.helpers import ServerProcess, free_port
from tests.synckit import audit, cli, outbox_chunks, register, states

Tamper = Callable[[dict[str, Any], str], dict[str, Any]]  # (receipt, descriptor note) -> receipt
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
               "content-encoding"}


class TamperingProxy:
    """Forwards every request to `upstream`; receipts of chunk `target` go through `tamper`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.target: tuple[str, int] | None = None
        self.tamper: Tamper | None = None
        self.tampered = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                answer = requests.request(self.command, proxy.upstream + self.path,
                                          data=body, headers=headers, timeout=30)
                content = proxy.rewrite(self.command, self.path, dict(self.headers), answer)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_PUT = do_POST = forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rewrite(self, method: str, path: str, headers: dict[str, str],
                answer: requests.Response) -> bytes:
        parts = path.split("?")[0].strip("/").split("/")
        is_receipt = len(parts) >= 7 and parts[1] == "encounters" and parts[5] == "chunks" and \
            (method == "PUT" or parts[-1] == "receipt")
        if not (is_receipt and answer.ok and self.tamper and self.target == (parts[4],
                                                                              int(parts[6]))):
            return answer.content
        receipt = answer.json()
        note = receipt.get("descriptor") or base64.b64decode(
            headers["Safehold-Descriptor"]).decode()
        self.tampered += 1
        return json.dumps(self.tamper(receipt, note)).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lying_server(tmp_path: Path) -> Iterator[tuple[TamperingProxy, ServerProcess]]:
    port = free_port()
    proxy = TamperingProxy(f"http://127.0.0.1:{port}")
    server = ServerProcess(tmp_path / "data", port=port, env={
        "SAFEHOLD_RATE_PER_MINUTE": "100000", "SAFEHOLD_PUBLIC_URL": proxy.url}).start()
    yield proxy, server
    server.stop()
    proxy.close()


def flip_proof(receipt: dict[str, Any], note: str) -> dict[str, Any]:
    raw = bytearray(base64.b64decode(receipt["inclusion_proof"][0]))
    raw[5] ^= 0x10
    return {**receipt, "inclusion_proof": [base64.b64encode(bytes(raw)).decode(),
                                           *receipt["inclusion_proof"][1:]]}


def forked_history(server_key: str, server_name: str) -> Tamper:
    """A receipt over a history whose earlier leaves were replaced, properly signed."""

    def tamper(receipt: dict[str, Any], note: str) -> dict[str, Any]:
        size, index = receipt["tree_size"], receipt["leaf_index"]
        leaves = [leaf_hash(f"forged {i}\n".encode()) for i in range(size)]
        leaves[index] = leaf_hash(note.encode())
        checkpoint = Checkpoint(encounter_origin(server_name, receipt["encounter_id"]), size,
                                root_hash(leaves))
        return {**receipt, "checkpoint": sign_checkpoint(checkpoint, server_key),
                "inclusion_proof": [base64.b64encode(h).decode()
                                    for h in inclusion_proof(index, leaves)]}

    return tamper


def record_offline(state: Path, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"m" * 400)
    assert cli(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "100",
               "--offline").returncode == 0


def row(state: Path, stream: str, seq: int) -> dict[str, Any]:
    return next(r for r in outbox_chunks(state) if (r["stream"], r["seq"]) == (stream, seq))


ONE_AT_A_TIME = {"SAFEHOLD_SYNC_WORKERS": "1"}  # so earlier receipts are seen first


def test_a_receipt_whose_proof_does_not_verify_is_reported_and_not_trusted(
        lying_server, tmp_path: Path) -> None:
    proxy, server = lying_server
    state = tmp_path / "phone"
    register(state, proxy.url)
    record_offline(state, tmp_path)
    proxy.target, proxy.tamper = ("audio", 1), flip_proof

    lied = cli(state, "sync", env=ONE_AT_A_TIME)
    assert lied.returncode == 1, lied.stderr
    assert "NOT acknowledged" in lied.stderr and "does not verify" in lied.stderr
    assert proxy.tampered >= 1
    victim = row(state, "audio", 1)
    assert victim["state"] == "queued" and victim["last_error"].startswith("untrusted")
    assert states(state) == {"acknowledged": len(outbox_chunks(state)) - 1, "queued": 1}

    proxy.tamper = None  # the server behaves again: the held chunk's real receipt verifies
    honest = cli(state, "sync")
    assert honest.returncode == 0, honest.stderr
    assert "1 were already on the server" in honest.stderr  # fetched, not uploaded twice
    assert set(states(state)) == {"acknowledged"}
    assert audit(state, server.url).clean


def test_a_checkpoint_inconsistent_with_an_earlier_one_is_reported_and_not_trusted(
        lying_server, tmp_path: Path) -> None:
    proxy, server = lying_server
    state = tmp_path / "phone"
    register(state, proxy.url)
    record_offline(state, tmp_path)
    server_key = (server.data_dir / "server.key").read_text().strip()
    proxy.target, proxy.tamper = ("audio", 2), forked_history(server_key, proxy.url.removeprefix("http://"))

    lied = cli(state, "sync", env=ONE_AT_A_TIME)
    assert lied.returncode == 1, lied.stderr
    assert "NOT acknowledged" in lied.stderr and "forked" in lied.stderr
    assert row(state, "audio", 2)["state"] == "queued"
    assert states(state)["acknowledged"] == len(outbox_chunks(state)) - 1

    # Asking again gets the same forged receipt: still refused, still not acknowledged.
    again = cli(state, "sync", env=ONE_AT_A_TIME)
    assert again.returncode == 1 and "forked" in again.stderr
    assert row(state, "audio", 2)["state"] == "queued"
