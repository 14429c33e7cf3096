"""A TCP proxy on 127.0.0.1 that breaks connections on purpose, for tests of the client.

It runs an asyncio loop in a background thread and forwards bytes between a client and an
upstream port. Each accepted connection gets a `Fault` from a plan:

- `pass`: forward everything;
- `reset_request`: forward `after` bytes of what the client sends, then reset both sides
  (RST, no FIN) - an upload cut off mid-body;
- `truncate_response`: forward the request whole but only `after` bytes of the answer, then
  close - a response cut short (the server did the work; the client never hears it);
- `stall`: forward `after` bytes of the answer, then hold the connection silent for
  `stall_seconds` before resetting it - a network that stops answering.

Byte offsets count across the whole connection, so with keep-alive the fault lands somewhere in
whichever request or response is passing at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("reset_request", "truncate_response", "stall")


@dataclass(frozen=True)
class Fault:
    kind: str = "pass"
    after: int = 0
    stall_seconds: float = 0.0


def random_plan(seed: int, probability: float, budget: int, max_after: int,
                stall_seconds: float = 2.0) -> Callable[[int], Fault]:
    """Each connection faulty with `probability`, kinds in turn, at most `budget` faults."""
    rng = random.Random(seed)
    used = 0

    def plan(index: int) -> Fault:
        nonlocal used
        if used >= budget or rng.random() >= probability:
            return Fault()
        kind = KINDS[used % len(KINDS)]
        used += 1
        return Fault(kind, rng.randrange(0, max_after), stall_seconds)

    return plan


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN, as a dropped mobile connection looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, plan: Callable[[int], Fault] | None = None) -> None:
        self.upstream_port = upstream_port
        self.plan = plan or (lambda _index: Fault())
        self.port = 0
        self.injected: Counter[str] = Counter()
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="faultproxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(port), self._loop)
        self.port = future.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        fault = self.plan(index)
        try:
            up_r, up_w = await self._connect(index)
        except OSError:
            _reset(client_w)
            return
        upstream = self._pump(client_r, up_w, fault if fault.kind == "reset_request" else None)
        downstream = self._pump(up_r, client_w,
                                fault if fault.kind in ("truncate_response", "stall") else None)
        tasks = [asyncio.ensure_future(upstream), asyncio.ensure_future(downstream)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if tasks[0] in done and fault.kind != "reset_request" and not tasks[0].exception():
                await asyncio.wait([tasks[1]])  # the client half-closed: let the answer finish
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_w, up_w):
                if fault.kind == "pass":
                    writer.close()
                else:
                    _reset(writer)

    async def _connect(self, index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.upstream_port)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    fault: Fault | None) -> None:
        sent = 0
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionError:
                return
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            if fault is not None and sent + len(data) > fault.after:
                writer.write(data[: fault.after - sent])
                await writer.drain()
                self.injected[fault.kind] += 1
                if fault.kind == "stall":
                    await asyncio.sleep(fault.stall_seconds)
                return
            writer.write(data)
            try:
                await writer.drain()
            except ConnectionError:
                return
            sent += len(data)


class RoundRobinProxy(FaultProxy):
    """A load balancer in front of several API nodes: connection i goes to the next node in
    turn; a node that refuses the connection (killed) is skipped, as a balancer's health check
    would. `routes` records which node port each connection reached, in order."""

    def __init__(self, upstream_ports: list[int]) -> None:
        super().__init__(upstream_ports[0])
        self.upstream_ports = list(upstream_ports)
        self.routes: list[int] = []

    async def _connect(self, index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        count = len(self.upstream_ports)
        for step in range(count):
            port = self.upstream_ports[(index + step) % count]
            try:
                pair = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.routes.append(port)
            return pair
        raise ConnectionRefusedError("every node refused the connection")
