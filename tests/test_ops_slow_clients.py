"""Slow and idle clients against the production server (gunicorn with server/gunicorn_conf.py).

200 connections on loopback send half a request head and stop, trickle a head byte by byte, or
trickle a chunk's body, reconnecting when the server drops them, while a phone records: its
acknowledgements must keep arriving (p99 under 1 s). Stalled heads and bodies are closed, and
the bodies a worker holds in memory stay within its budget however many clients send at once.
Everything is bounded in count and time.
"""

from __future__ import annotations

import base64
import select
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from helpers import Device, ServerProcess, registered_device

CONNECTIONS = 200
MAX_OPENS = 2000  # reconnections included
ATTACK_SECONDS = 40.0  # the attack stops by itself after this, whatever happens
CHUNKS = 40


@dataclass
class Attack:
    """Slow clients on a thread of their own; each kind takes a third of the connections."""

    server: ServerProcess
    upload_path: str
    token: str
    opens: int = 0
    open_now: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def head(self, kind: str) -> tuple[bytes, bytes]:
        """(what is sent at once, what is then trickled one byte at a time)."""
        host = f"Host: {self.server.name}\r\n".encode()
        if kind == "idle":
            return b"GET /v1/server HTTP/1.1\r\n" + host, b""
        if kind == "slow_head":
            return b"G", b"ET /v1/server HTTP/1.1\r\n" + host + b"X-Slow: " + b"a" * 4000
        return (b"PUT " + self.upload_path.encode() + b" HTTP/1.1\r\n" + host +
                f"Authorization: Bearer {self.token}\r\n".encode() +
                b"Content-Type: application/octet-stream\r\nSafehold-Descriptor: AAAA\r\n"
                b"Content-Length: 100000\r\n\r\n", b"x" * 100000)

    def connect(self, kind: str) -> tuple[socket.socket, bytes] | None:
        if self.opens >= MAX_OPENS:
            return None
        self.opens += 1
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        sock.setblocking(False)
        first, rest = self.head(kind)
        sock.send(first)
        return sock, rest

    def run(self) -> None:
        kinds = ["idle", "slow_head", "slow_body"]
        slots: list[tuple[str, socket.socket, bytes] | None] = []
        deadline = time.monotonic() + ATTACK_SECONDS
        for i in range(CONNECTIONS):
            kind = kinds[i % 3]
            made = self.connect(kind)
            slots.append((kind, *made) if made else None)
        while not self.stop.is_set() and time.monotonic() < deadline:
            live = [slot for slot in slots if slot is not None]
            self.open_now = len(live)
            readable, _, _ = select.select([s[1] for s in live], [], [], 0.5)
            for i, slot in enumerate(slots):
                if slot is None:
                    continue
                kind, sock, rest = slot
                closed = sock in readable and not self._drain(sock)
                if not closed and rest:
                    try:
                        sock.send(rest[:1])
                        rest = rest[1:]
                    except OSError:
                        closed = True
                if closed:  # the server dropped it: come back, as a slowloris would
                    sock.close()
                    made = self.connect(kind)
                    slots[i] = (kind, *made) if made else None
                else:
                    slots[i] = (kind, sock, rest)
        for slot in slots:
            if slot is not None:
                slot[1].close()

    @staticmethod
    def _drain(sock: socket.socket) -> bool:
        """Read what the server sent; False once it has closed the connection."""
        try:
            return bool(sock.recv(65536))
        except BlockingIOError:
            return True
        except OSError:
            return False


def record(phone: Device, encounter: str) -> list[float]:
    """A live recording: one chunk after another, each timed until its receipt (a request
    that times out counts as its full timeout)."""
    latencies = []
    for seq in range(CHUNKS):
        body, note = phone.seal(encounter, "audio", seq, final=seq == CHUNKS - 1)
        started = time.monotonic()
        try:
            status = phone.put_chunk(encounter, "audio", seq, body, note).status_code
        except requests.RequestException:
            status = 0
        latencies.append(time.monotonic() - started if status == 201 else 10.0)
        time.sleep(0.1)
    return latencies


def test_a_phone_records_through_200_slow_clients(make_server) -> None:
    server = make_server(kind="gunicorn", env={"SAFEHOLD_RATE_PER_MINUTE": "100000"})
    phone = registered_device(server.url, server.name)
    encounter = phone.new_encounter()
    attack = Attack(server, f"/v1/encounters/{encounter}/streams/video/chunks/0", str(phone.token))
    attacker = threading.Thread(target=attack.run, daemon=True)
    attacker.start()
    try:
        deadline = time.monotonic() + 20
        while attack.open_now < CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert attack.open_now == CONNECTIONS
        time.sleep(1)  # every slow connection has sent its first bytes
        latencies = record(phone, encounter)
        still_open = attack.open_now
    finally:
        attack.stop.set()
        attacker.join(timeout=30)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"acks through {CONNECTIONS} slow clients ({attack.opens} opened): "
          f"median {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert p99 < 1.0, f"p99 {p99:.3f}s; latencies {sorted(latencies)[-5:]}"
    assert still_open >= CONNECTIONS * 0.9  # the attack was still on while it recorded
    # Every chunk is stored, and the slow bodies stored nothing.
    listed = phone.call("GET", f"/v1/encounters/{encounter}").json()
    assert set(listed["streams"]) == {"audio"}, listed
    assert listed["streams"]["audio"]["seqs"] == list(range(CHUNKS))
    server.stop()
    assert "Traceback" not in server.output()


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (reading and discarding), or None."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def test_stalled_heads_and_bodies_are_closed_and_store_nothing(make_server) -> None:
    server = make_server(kind="gunicorn", env={"SAFEHOLD_HEADER_TIMEOUT": "1",
                                               "SAFEHOLD_BODY_TIMEOUT": "2"})
    phone = registered_device(server.url, server.name)
    encounter = phone.new_encounter()
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    idle.sendall(b"GET /v1/server HTTP/1.1\r\nHost: x\r\n")
    body, note = phone.seal(encounter, "audio", 0)
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    head = (f"PUT /v1/encounters/{encounter}/streams/audio/chunks/0 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {phone.token}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Safehold-Descriptor: {base64.b64encode(note.encode()).decode()}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    stalled.sendall(head + body[:10])  # then nothing
    assert (closed_within(idle, 10) or 99) < 5  # the head's deadline (1 s), not later
    assert (closed_within(stalled, 10) or 99) < 6  # 2 s without progress on the body
    assert phone.call("GET", f"/v1/encounters/{encounter}").json()["streams"] == {}
    # A slow phone whose body keeps moving is not cut off, however long it takes in all.
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    slow.sendall(head)
    step = max(1, len(body) // 4)
    for start in range(0, len(body), step):
        time.sleep(0.9)  # 3.6 s in all: longer than the body timeout, never 2 s idle
        slow.sendall(body[start:start + step])
    answer = slow.recv(65536)
    slow.close()
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    server.stop()
    assert "Traceback" not in server.output()
    assert "whose request body stalled" in server.output()


def worker_rss_bytes(server: ServerProcess) -> int:
    """Resident memory of gunicorn's worker processes (children of the master)."""
    assert server.proc is not None
    master = server.proc.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def test_bodies_held_in_memory_are_bounded(make_server) -> None:
    server = make_server(kind="gunicorn", env={"SAFEHOLD_BODY_BUFFER_MB": "1",
                                               "SAFEHOLD_BODY_TIMEOUT": "20"})
    phone = registered_device(server.url, server.name)
    encounter = phone.new_encounter()
    for _ in range(4):  # both workers have served requests before the baseline is taken
        requests.get(server.url + "/healthz", timeout=5, headers={"Connection": "close"})
    before = worker_rss_bytes(server)
    declared = 4 * 1024 * 1024 - 1
    head = (f"PUT /v1/encounters/{encounter}/streams/audio/chunks/0 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {phone.token}\r\nSafehold-Descriptor: AAAA\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n")
    sockets, sent = [], 0
    for _ in range(40):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(head.encode())
        sock.setblocking(False)
        sockets.append([sock, 3 * 1024 * 1024])  # 3 MiB of the 4, then silence
    deadline = time.monotonic() + 15
    block = b"z" * 65536
    while time.monotonic() < deadline and any(left for _, left in sockets):
        for entry in sockets:
            if entry[1]:
                try:
                    n = entry[0].send(block[:min(len(block), entry[1])])
                except BlockingIOError:
                    continue
                entry[1] -= n
                sent += n
        time.sleep(0.01)
    time.sleep(1)
    grown = worker_rss_bytes(server) - before
    for sock, _ in sockets:
        sock.close()
    # Without the budget the workers would hold every byte that reached them.
    assert sent > 60 * 1024 * 1024, sent
    assert grown < 40 * 1024 * 1024, (grown, sent)
