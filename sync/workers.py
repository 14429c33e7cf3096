"""Process pools for per-chunk work (verify and decrypt use every core).

Chunks are independent, so checking and decrypting them parallelises perfectly, but much of the
per-chunk work is Python (parsing headers and notes) that holds the GIL: threads would queue
behind each other. Worker processes each open the bundle themselves (a zip's file position must
not be shared) through an initializer; tasks and results are small records, never chunk bytes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PER_WORKER_MIN = 16  # below this many items per worker, starting processes costs more than it saves
# glibc's mallopt parameters (malloc.h) and the values set for bulk chunk work.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREE_BYTES = 64 << 20  # free heap kept for reuse, not given back to the system
_MMAP_FROM_BYTES = 4 << 20  # only blocks larger than this get their own mapping


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


@contextmanager
def ordered_map(task: Callable[[T], R], items: Iterable[T], total: int, workers: int | None,
                initializer: Callable[..., None],
                initargs: tuple[Any, ...]) -> Iterator[Iterator[R]]:
    """`task` over `items` (`total` of them), results in order: on worker processes when that
    pays, else in this process (after running `initializer` here, so `task` finds the same
    state either way).

    With a pool, every item is handed out before this yields: the workers start on the first
    ones while `items` is still being produced, and while the caller does other work before it
    reads the results.
    """
    count = worker_count(total, workers)
    if count == 1:
        initializer(*initargs)
        yield map(task, items)
        return
    pool = process_pool(count, initializer, initargs)
    try:
        yield pool.map(task, items, chunksize=chunksize(total, count))
    finally:
        pool.shutdown(cancel_futures=True)


def reuse_freed_buffers() -> None:
    """Ask glibc's malloc to keep freed buffers of a few MiB for reuse (no-op elsewhere).

    Every chunk passes through fresh buffers of a few hundred KiB (the file as read, its
    plaintext). By default glibc maps each such buffer anew, or hands the top of the heap back
    to the system as soon as it is freed, so every one is page-faulted in again: that doubled
    the CPU time of opening a 256 KiB chunk. Set once per process, before workers are forked
    (they inherit it); the heap still holds only what is in use plus at most _KEEP_FREE_BYTES.
    """
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):
        return
    mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES)
    mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM_BYTES)
