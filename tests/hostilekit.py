"""A hostile operator's server, for tests of what a client does with what it is sent.

`HostileServer` listens on the address a phone registered with and passes every request on to
the real server behind it (moved to another port, same data, same key, same name), except
those a `rule` answers itself: an endless body, an oversized JSON answer, or a log rewritten
and re-signed with the server's own key (an operator has it) and, where a test needs it, a
device's key (a device that was taken). Every answer it makes is bounded in bytes and time.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from helpers import ServerProcess

from crypto.checkpoint import Checkpoint, encounter_origin, sign_checkpoint
from crypto.merkle import leaf_hash, root_hash

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
              "content-encoding", "accept-encoding"}
ENDLESS_BYTES = 1 << 30  # an "endless" answer stops here, or when the client hangs up
ENDLESS_SECONDS = 60.0

Rule = Callable[["Handler"], bool]  # True: the rule answered the request itself


class Handler(BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # quiet; `_any` counts every request in `server.seen`

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.server.seen[f"{self.command} {self.path}"] += 1
        for rule in self.server.rules:
            if rule(self):
                return
        self.relay()

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any

    def upstream(self, path: str | None = None) -> requests.Response:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        return requests.request(self.command, self.server.upstream + (path or self.path),
                                headers=headers, data=self.body or None, timeout=30)

    def relay(self) -> None:
        answer = self.upstream()
        self.send(answer.status_code, answer.content,
                  {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP})

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, value: Any) -> None:
        self.send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def send_endless(self, content_type: str, opening: bytes, block: bytes) -> None:
        """200 and a body that does not end (until the client hangs up, or the bounds)."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        sent, deadline = 0, time.monotonic() + ENDLESS_SECONDS
        try:
            self.wfile.write(opening)
            while sent < ENDLESS_BYTES and time.monotonic() < deadline:
                self.wfile.write(block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.server.endless_sent += sent


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, upstream: str, rules: list[Rule]) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.upstream = upstream
        self.rules = rules
        self.seen: Counter[str] = Counter()
        self.endless_sent = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def behind_hostile(server: ServerProcess, rules: list[Rule]) -> tuple[ServerProcess,
                                                                       HostileServer]:
    """Move the real server (same data, key and name) behind a hostile one on its address."""
    server.stop()
    moved = ServerProcess(server.data_dir, env={"SAFEHOLD_PUBLIC_URL": server.url}).start()
    return moved, HostileServer(server.port, moved.url, rules).start()


# ---------------------------------------------------------------- rules


def endless_bodies(true_first: bool) -> Rule:
    """Every chunk body (single, range or pack) answered with bytes that never end: the true
    bytes first and then more (`true_first`), or zeros from the start."""

    def rule(handler: Handler) -> bool:
        route = handler.route
        if handler.command != "GET" or not (route.endswith("/pack") or "/chunks/" in route
                                            and not route.endswith("/receipt")):
            return False
        opening = handler.upstream().content if true_first else b""
        handler.send_endless("application/octet-stream", opening, b"\x00" * 65536)
        return True

    return rule


def endless_leaves(handler: Handler) -> bool:
    """A page of log leaves that never closes its JSON."""
    if handler.route.endswith("/log/leaves"):
        leaf = base64.b64encode(b"x" * 300).decode()
        handler.send_endless("application/json", b'{"leaves": [',
                             (json.dumps({"index": 0, "data": leaf}) + ", ").encode() * 100)
        return True
    return False


def signed_checkpoint(server_key: str, name: str, encounter: str, leaves: list[bytes],
                      size: int | None = None) -> str:
    root = root_hash([leaf_hash(leaf) for leaf in leaves])
    return sign_checkpoint(Checkpoint(encounter_origin(name, encounter),
                                      len(leaves) if size is None else size, root), server_key)


def huge_checkpoint(server_key: str, name: str, size: int) -> Rule:
    """A checkpoint signed with the server's key claiming `size` leaves, and leaves served for
    whatever is asked (the old client fetched them page after page)."""

    def rule(handler: Handler) -> bool:
        encounter = handler.route.split("/")[3] if handler.route.startswith("/v1/encounters/") \
            else ""
        if handler.route.endswith("/log/checkpoint"):
            handler.send_json({"tree_size": size, "checkpoint": signed_checkpoint(
                server_key, name, encounter, [b"x"], size)})
            return True
        if handler.route.endswith("/log/leaves"):
            start, end = int(handler.query.get("start", 0)), int(handler.query.get("end", 0))
            leaf = base64.b64encode(b"x" * 300).decode()
            handler.send_json({"leaves": [{"index": i, "data": leaf}
                                          for i in range(start, min(end, start + 1000))]})
            return True
        return False

    return rule


def rewritten_log(server_key: str, name: str,
                  rewrite: Callable[[list[bytes]], list[bytes]]) -> Rule:
    """The encounter's real leaves, changed by `rewrite`, under a checkpoint re-signed with the
    server's key: what an operator who edits the log serves."""

    def forged(handler: Handler) -> list[bytes]:
        encounter = handler.route.split("/")[3]
        real = handler.upstream(f"/v1/encounters/{encounter}/log/leaves").json()["leaves"]
        return rewrite([base64.b64decode(leaf["data"]) for leaf in real])

    def rule(handler: Handler) -> bool:
        if handler.route.endswith("/log/checkpoint"):
            leaves = forged(handler)
            handler.send_json({"tree_size": len(leaves), "checkpoint": signed_checkpoint(
                server_key, name, handler.route.split("/")[3], leaves)})
            return True
        if handler.route.endswith("/log/leaves"):
            leaves = forged(handler)
            start, end = int(handler.query.get("start", 0)), int(handler.query.get("end", 0))
            handler.send_json({"leaves": [
                {"index": i, "data": base64.b64encode(leaves[i]).decode()}
                for i in range(start, min(end, len(leaves)))]})
            return True
        return False

    return rule


def advertised_chunk_limit(limit: int) -> Rule:
    def rule(handler: Handler) -> bool:
        if handler.route == "/v1/server":
            info = handler.upstream().json()
            info["limits"]["max_chunk_bytes"] = limit
            handler.send_json(info)
            return True
        return False

    return rule


def read_key(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def refuse_encounter(message: str) -> Rule:
    """The encounter's page answered with a refusal whose words try to steer the terminal."""

    def rule(handler: Handler) -> bool:
        if handler.route.count("/") == 3 and handler.route.startswith("/v1/encounters/"):
            handler.send(403, json.dumps({"error": {"code": "forbidden\x1b[2J",
                                                    "message": message}}).encode(),
                         {"Content-Type": "application/json"})
            return True
        return False

    return rule


def too_many_requests(retry_after: str) -> Rule:
    """Every request refused with 429 and the given Retry-After."""

    def rule(handler: Handler) -> bool:
        handler.send(429, json.dumps({"error": {
            "code": "rate_limited", "message": f"retry after {retry_after} seconds."}}).encode(),
            {"Content-Type": "application/json", "Retry-After": retry_after})
        return True

    return rule
