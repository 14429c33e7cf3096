"""Priority on the link's bandwidth, not only on the queue's order.

Sending the most urgent chunk first is not enough on a saturated uplink: every upload in flight
shares the link, so eight video chunks in flight leave an audio chunk one ninth of it, and the
audio waits behind tens of seconds of video. The pacer decides, each time the uploader could
start a request, how many chunks of each priority (log 0 < audio 1 < video 2 < other 3) may be
in flight:

- a chunk never starts while a chunk of higher priority is waiting to be sent;
- while higher-priority media is waiting, in flight, or expected (a live recording of a
  higher-priority stream is running), at most TWO chunks of lower priority are open, and only
  one of them sends at a time (the other has connected and waits its turn, so the link does
  not idle while the first waits for its answer): the higher-priority chunk never shares the
  link with more than one transfer, and that one pauses for it (below);
- otherwise the number in flight is sized to the link: enough chunks to keep about
  `TARGET_SECONDS` of transfer queued, measured from the uploads that completed (throughput
  over the last few transfers), between 2 (one waits for its answer while the next is sent) and
  twice the worker count; transfers of lower priority do not count against that number;
- event-log entries are a few hundred bytes: they always start at once (they cost no bandwidth
  worth protecting and are the first thing a court reads);
- and inside a transfer: the body of a media chunk is handed to the socket in small pieces
  (`Floor.body`), and the body of a lower-priority chunk PAUSES while a higher-priority one
  is being sent and answered, so the one video chunk in flight leaves the link to the audio
  chunk instead of halving it (the sockets keep little unsent data queued, TCP_NOTSENT_LOWAT
  in sync/api.py, so a pause takes effect at once). A piece waits at most MAX_PAUSE, so a
  stuck urgent upload cannot freeze the others.

Lower-priority chunks are held back, never dropped: they go as soon as the link frees.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

LOG_PRIORITY = 0
TARGET_SECONDS = 2.0  # transfer time queued on the link when nothing more urgent is around
START_CONCURRENCY = 2  # before anything was measured
WINDOW = 8  # completed transfers the throughput is measured over
SMALL = 4096  # bytes: a request this small measures the round trip, not the bandwidth
PRESSED = 2  # lower-priority requests open while more urgent media is around (one sends)
PIECE = 4096  # bytes of a body handed to the socket at a time (the granularity of a pause)
# Keep at most this much unsent data in a socket: a body that pauses for a more urgent one then
# stops taking the link almost at once; throughput is not capped (only data not yet sent is,
# not data in flight). Linux and macOS have TCP_NOTSENT_LOWAT; elsewhere pauses act later.
UNSENT_BYTES = 8 * 1024
MAX_PAUSE = 5.0  # seconds one piece of a body may wait for its turn (then it goes anyway)


@dataclass
class InFlight:
    priority: int
    size: int


class LinkMeter:
    """Throughput and round trip of the link, from the uploads that completed."""

    def __init__(self) -> None:
        self._done: deque[tuple[float, float, int]] = deque(maxlen=WINDOW)  # start, end, bytes
        self.rtt: float | None = None

    def completed(self, started: float, size: int, ended: float | None = None) -> None:
        ended = time.monotonic() if ended is None else ended
        if size <= SMALL:
            elapsed = ended - started
            self.rtt = elapsed if self.rtt is None else min(self.rtt, elapsed)
            return
        self._done.append((started, ended, size))

    def throughput(self) -> float | None:
        """Bytes per second the link carried over the last transfers (None: not measured)."""
        if len(self._done) < 2:
            return None
        span = max(end for _s, end, _n in self._done) - min(s for s, _e, _n in self._done)
        return sum(n for _s, _e, n in self._done) / max(span, 1e-3)


class Pacer:
    def __init__(self, workers: int, meter: LinkMeter | None = None) -> None:
        self.workers = max(1, workers)
        self.meter = meter or LinkMeter()

    def concurrency(self, typical_size: int) -> int:
        """Chunks in flight that keep about TARGET_SECONDS of transfer queued on the link."""
        rate = self.meter.throughput()
        if rate is None:
            return min(START_CONCURRENCY, 2 * self.workers)
        fits = math.floor(rate * TARGET_SECONDS / max(typical_size, 1))
        # Two at least: while one transfer waits for its answer, the next keeps the link busy.
        return max(2, min(2 * self.workers, fits))

    def allowed(self, priority: int, waiting: dict[int, int], inflight: list[InFlight],
                expected: set[int], typical_size: int) -> int:
        """How many more chunks of `priority` may start now."""
        if priority == LOG_PRIORITY:
            return max(0, self.workers - sum(f.priority == LOG_PRIORITY for f in inflight))
        if any(waiting.get(p, 0) for p in range(priority)):
            return 0  # something more urgent still waits: it goes first
        media = [f for f in inflight if f.priority != LOG_PRIORITY]
        pressure = any(f.priority < priority for f in media) or \
            any(p < priority for p in expected)
        if pressure:  # one sends (paused while the urgent one is sent), one waits ready
            return max(0, PRESSED - sum(f.priority >= priority for f in media))
        # Less urgent transfers in flight do not count against this priority's share.
        return max(0, self.concurrency(typical_size)
                   - sum(f.priority <= priority for f in media))


class Floor:
    """Whose body may take the link now: a body waits while a more urgent request is open
    (sent or awaiting its answer) and while an earlier body of its own priority is still
    being sent - so a second chunk of a priority can connect and wait, ready to go the moment
    the first one's last byte is out, instead of sharing the link with it."""

    def __init__(self) -> None:
        self._open: Counter[int] = Counter()  # priority -> requests begun and not answered
        self._sending: dict[int, list[PacedBody]] = {}  # priority -> bodies not fully read
        self._changed = threading.Condition()

    def body(self, data: bytes, priority: int) -> PacedBody:
        return PacedBody(data, priority, self)

    def _blocked(self, body: PacedBody) -> bool:
        if any(self._open[p] for p in range(LOG_PRIORITY + 1, body.priority)):
            return True
        queue = self._sending.get(body.priority, [])
        return bool(queue) and queue[0] is not body

    def _begin(self, body: PacedBody) -> None:
        with self._changed:
            self._open[body.priority] += 1
            self._sending.setdefault(body.priority, []).append(body)

    def _sent(self, body: PacedBody) -> None:
        with self._changed:
            queue = self._sending.get(body.priority, [])
            if body in queue:
                queue.remove(body)
                self._changed.notify_all()

    def _end(self, body: PacedBody) -> None:
        self._sent(body)
        with self._changed:
            self._open[body.priority] -= 1
            self._changed.notify_all()

    def _wait_turn(self, body: PacedBody) -> None:
        deadline = time.monotonic() + MAX_PAUSE
        with self._changed:
            while self._blocked(body):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)


class PacedBody:
    """A request body that requests/urllib3 read piece by piece (Content-Length is len()).

    Its turn on the floor lasts from its first piece until `close()`, which the uploader calls
    when the answer came (or the request failed): while an urgent request waits for its answer
    the link carries little else, so its last bytes are not queued behind a video's. It may be
    read again from the start (a repeated request after a new login)."""

    def __init__(self, data: bytes, priority: int, floor: Floor) -> None:
        self.data = data
        self.priority = priority
        self.floor = floor
        self._pos = 0
        self._open = False

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> PacedBody:  # requests streams only bodies that look iterable
        return self

    def __next__(self) -> bytes:
        piece = self.read(PIECE)
        if not piece:
            raise StopIteration
        return piece

    def tell(self) -> int:
        # requests asks before every request it prepares: a body already sent to its end
        # (the request is repeated after a new login) starts again from the beginning.
        if self._pos >= len(self.data):
            self._pos = 0
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if self._pos >= len(self.data):
            return b""
        if not self._open:
            self._open = True
            self.floor._begin(self)
        self.floor._wait_turn(self)
        size = PIECE if size is None or size < 0 else min(size, PIECE)
        piece = self.data[self._pos:self._pos + size]
        self._pos += len(piece)
        if self._pos >= len(self.data):
            self.floor._sent(self)
        return piece

    def close(self) -> None:
        if self._open:
            self._open = False
            self.floor._end(self)


class _LowLatencyAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # urllib3's default, kept
        if hasattr(socket, "TCP_NOTSENT_LOWAT"):
            options.append((socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, UNSENT_BYTES))
        kwargs["socket_options"] = options
        super().init_poolmanager(*args, **kwargs)


def low_latency_session() -> requests.Session:
    """A requests session whose sockets keep little unsent data (see UNSENT_BYTES)."""
    session = requests.Session()
    adapter = _LowLatencyAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
