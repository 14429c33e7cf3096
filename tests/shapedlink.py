"""A shaped link on 127.0.0.1: a phone's uplink as a TCP proxy with a rate, a delay and loss.

An asyncio loop in a background thread (as tests/faultproxy.py) forwards each connection to an
upstream port through two `Direction`s, up (client -> server) and down (server -> client), each
shared by all connections like one radio link:

- rate: every piece (at most PIECE bytes) is transmitted in turn at `rate` bytes per second; a
  connection puts its next piece on the link only once its previous one is through, so active
  connections interleave piece by piece (the link is the bottleneck; the sender's socket buffer
  holds what waits, as a phone's does);
- buffering: the proxy keeps little of a connection's data before the link takes it (its
  socket receive buffer is QUEUE_BYTES, its stream buffer a piece or two), like a modem whose
  queue holds a fraction of a second; the rest waits in the sender's socket;
- delay: a piece arrives `delay` seconds after it was transmitted (one way); a new connection
  pays one round trip for its handshake before any byte flows;
- loss: each 1448-byte segment is lost with probability `loss`; TCP notices after about a round
  trip (duplicate acks; at least the 200 ms retransmission-timer floor) and sends it again, so
  the piece and everything behind it on that connection arrive that much later (a stall,
  head-of-line blocked), and the segment crosses the link twice.

`heavy` counts the connections whose request has sent more than `heavy_bytes` but not all of
its body yet (from its Content-Length): large uploads that are taking the link right now.
`stop()` closes everything; `cut()` makes new connections fail and resets the open ones (the
network gone), `restore()` undoes it.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import threading
from dataclasses import dataclass, field

PIECE = 4096
QUEUE_BYTES = 8 * 1024
SEGMENT = 1448
MIN_RTO = 0.2


@dataclass
class _Request:
    """How far the (first) request on a connection has got up the link."""

    sent: int = 0
    total: int | None = None  # headers + Content-Length, once the headers went through
    head: bytes = b""

    def add(self, data: bytes) -> None:
        self.sent += len(data)
        if self.total is None and len(self.head) < 65536:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end >= 0:
                length = 0
                for line in self.head[:end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                self.total = end + 4 + length

    def heavy(self, threshold: int) -> int:
        return int(self.sent > threshold and (self.total is None or self.sent < self.total))


@dataclass
class Direction:
    rate: float  # bytes per second
    delay: float  # seconds, one way
    loss: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    free_at: float = 0.0  # loop time at which the link has sent everything reserved
    carried: int = 0

    def reserve(self, now: float, size: int) -> float:
        """Put `size` bytes on the link after what is already on it; when they are through."""
        self.free_at = max(now, self.free_at) + size / self.rate
        self.carried += size
        return self.free_at

    def lost_segments(self, size: int) -> int:
        if self.loss <= 0:
            return 0
        return sum(self.rng.random() < self.loss for _ in range(math.ceil(size / SEGMENT)))


class ShapedLink:
    def __init__(self, upstream_port: int, up: Direction, down: Direction) -> None:
        self.upstream_port = upstream_port
        self.up, self.down = up, down
        self.port = 0
        self.connections = 0
        self.stalls = 0
        self.heavy_bytes = 1 << 62
        self.heavy = 0
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="shapedlink")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> ShapedLink:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(port), self._loop).result(10)
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

    def cut(self) -> None:
        """The network is gone: open connections are reset, new ones refused."""
        async def reset() -> None:
            self._cut = True
            for writer in list(self._writers):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(reset(), self._loop).result(timeout=10)

    def restore(self) -> None:
        self._cut = False

    def __enter__(self) -> ShapedLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self, port: int) -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, QUEUE_BYTES)  # accepted ones too
        sock.bind(("127.0.0.1", port))
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=PIECE)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._cut:
            client_w.transport.abort()
            return
        await asyncio.sleep(self.up.delay + self.down.delay)  # the TCP handshake
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port,
                                                       limit=PIECE)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, up_w))
        request = _Request()
        tasks = [asyncio.ensure_future(self._pump(client_r, up_w, self.up, request)),
                 asyncio.ensure_future(self._pump(up_r, client_w, self.down))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.ALL_COMPLETED)
        finally:
            self.heavy -= request.heavy(self.heavy_bytes)
            for task in tasks:
                task.cancel()
            for writer in (client_w, up_w):
                self._writers.discard(writer)
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: Direction, request: _Request | None = None) -> None:
        """Read a piece, put it on the link, deliver it `delay` later (in order)."""
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.ensure_future(self._deliver(line, writer))
        loop = asyncio.get_running_loop()
        arrive_floor = 0.0
        try:
            while True:
                try:
                    data = await reader.read(PIECE)
                except ConnectionError:
                    data = b""
                if not data:
                    line.put_nowait((arrive_floor, b""))
                    break
                if request is not None:
                    before = request.heavy(self.heavy_bytes)
                    request.add(data)
                    self.heavy += request.heavy(self.heavy_bytes) - before
                sent = link.reserve(loop.time(), len(data))
                lost = link.lost_segments(len(data))
                arrive = sent + link.delay
                if lost:
                    self.stalls += 1
                    resent = link.reserve(sent, lost * SEGMENT)
                    arrive = resent + link.delay + max(MIN_RTO, self.up.delay + self.down.delay)
                arrive_floor = max(arrive_floor, arrive)
                line.put_nowait((arrive_floor, data))
                await asyncio.sleep(max(0.0, sent - loop.time()))
            await deliver
        finally:
            deliver.cancel()

    @staticmethod
    async def _deliver(line: asyncio.Queue[tuple[float, bytes]],
                       writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            at, data = await line.get()
            await asyncio.sleep(max(0.0, at - loop.time()))
            try:
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return


def shaped(upstream_port: int, up_rate: float, down_rate: float, delay: float,
           loss: float = 0.0, seed: int = 7) -> ShapedLink:
    """A link like a phone's: `up_rate`/`down_rate` bytes per second, `delay` s each way."""
    return ShapedLink(upstream_port, Direction(up_rate, delay, loss, random.Random(seed)),
                      Direction(down_rate, delay, loss, random.Random(seed + 1)))
