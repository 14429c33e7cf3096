"""Per-device (and, before login, per-address) token buckets.

A bucket holds up to RATE_PER_MINUTE tokens and refills continuously, so a phone can burst a
minute's worth of chunks after a network outage and then keeps the steady rate. Buckets live in
the process: with several gunicorn workers the effective limit is workers x rate, which still
stops a runaway or hostile client from starving everyone else.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

MAX_BUCKETS = 100_000  # forget idle buckets rather than grow without bound


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Spend one token for `key`; None if allowed, else seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.refill_per_second)
            if tokens >= 1.0:
                self._remember(key, tokens - 1.0, now)
                return None
            self._remember(key, tokens, now)
            return (1.0 - tokens) / self.refill_per_second

    def _remember(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()
        self._buckets[key] = (tokens, now)


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
