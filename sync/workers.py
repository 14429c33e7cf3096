"""Process pools for per-chunk work (verify and decrypt use every core).

Chunks are independent, so checking and decrypting them parallelises perfectly, but much of the
per-chunk work is Python (parsing headers and notes) that holds the GIL: threads would queue
behind each other. Worker processes each open the bundle themselves (a zip's file position must
not be shared) through an initializer; tasks and results are small records, never chunk bytes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PER_WORKER_MIN = 16  # below this many items per worker, starting processes costs more than it saves


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def worker_count(items: int, workers: int | None) -> int:
    """How many processes are worth starting for `items` tasks (1 means: do it in-process)."""
    wanted = workers or default_workers()
    return max(1, min(wanted, items // PER_WORKER_MIN))


def chunksize(items: int, workers: int) -> int:
    """Tasks per hand-off: big enough to amortise the pipe, small enough to balance the load."""
    return max(1, min(64, items // (workers * 8)))


def process_pool(workers: int, initializer: Callable[..., None],
                 initargs: tuple[Any, ...]) -> ProcessPoolExecutor:
    # fork: workers start in milliseconds and inherit the imported modules; elsewhere the
    # platform default (spawn) works too, only slower to start.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=initializer, initargs=initargs)
