"""The uploader: drains the outbox to the server, verifying every receipt.

A state machine over a Transport (the ApiClient is one; tests put real proxies in between).
One `drain` does, until nothing sendable is left or the network stays dead for `patience` s:

1. handshake: the server still presents the key pinned at registration (else UntrustedServer);
2. for each encounter with chunks to send: create it (PUT, idempotent) or ask which seqs the
   server already holds; held chunks only need their receipt fetched, never a second upload;
3. claim the most urgent due chunks (log, then audio, then video) and send them from a thread
   pool (the workers only talk HTTP), as many of each priority as the pacer allows
   (pacing.py: a lower-priority chunk never crowds out a higher-priority one on the link);
4. receipts are checked at once (signature, origin, inclusion), then linked to the checkpoints
   already trusted in tree-size order, so most need no consistency request; acknowledgements
   and the checkpoints they proved are committed together, one transaction per round;
5. failures: network trouble and 429/5xx go back to the queue with exponential backoff and full
   jitter (at least Retry-After); other refusals and untrusted receipts are reported and the
   chunk stays unacknowledged for a later run.

A killed process leaves chunks `uploading`; the next drain puts them back in the queue first.
Only one process of a state folder drains at a time (sync/upload/uplink.py holds the lease); it also
sends the chunks other processes queue, noticing their commits through SQLite's data_version.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.errors import NetworkError, ServerRefusal, SyncError, UntrustedServer
from sync.upload.outbox import ChunkKey, Outbox, OutboxChunk, stream_priority
from sync.upload.pacing import LOG_PRIORITY, Floor, InFlight, PacedBody, Pacer
from sync.upload.receipts import Proven, ReceiptVerifier
from sync.upload.recorder import pid_alive

PREPARE_EVERY = 1.0  # seconds between looks for new encounters (sooner when woken)
LINK_WAIT = 0.5  # seconds a receipt may wait for the receipts before it to arrive
COMMIT_EVERY = 0.1  # seconds between acknowledgement transactions while uploads run
BULK_PRIORITY = 2  # video and after: their acks may wait for the next batch; others go at once
LOOK_EVERY = 0.05  # seconds between looks for chunks other processes queued (while idle)
FILL_EVERY = 0.05  # seconds between looks for a more urgent chunk while uploads run


class Transport(Protocol):
    def server_info(self) -> dict[str, Any]: ...
    def create_encounter(self, encounter_id: str, started_at: str) -> dict[str, Any]: ...
    def encounter(self, encounter_id: str) -> dict[str, Any]: ...
    def put_chunk(self, encounter_id: str, stream: str, seq: int, body: bytes | PacedBody,
                  descriptor_note: str) -> dict[str, Any]: ...
    def chunk_receipt(self, encounter_id: str, stream: str, seq: int) -> dict[str, Any]: ...
    def consistency(self, encounter_id: str, first: int, second: int) -> list[bytes]: ...


@dataclass
class Backoff:
    """Exponential backoff with full jitter (delay uniform in [0, min(cap, base * 2^n)])."""

    base: float = 0.2
    cap: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        wait_for = self.rng.uniform(0.0, min(self.cap, self.base * 2 ** min(attempts, 30)))
        return max(wait_for, retry_after or 0.0)


@dataclass
class SyncReport:
    acknowledged: int = 0
    already_held: int = 0
    retries: int = 0
    consistency_requests: int = 0
    refused: dict[ChunkKey, str] = field(default_factory=dict)
    untrusted: dict[ChunkKey, str] = field(default_factory=dict)
    last_network_error: str | None = None
    remaining: int = 0
    fatal: SyncError | None = None
    waiting_since: float | None = None  # time.time() of the first failure of an outage


@dataclass
class _Flight:
    chunk: OutboxChunk
    held: bool
    started: float

    @property
    def slot(self) -> InFlight:
        return InFlight(stream_priority(self.chunk.key.stream), len(self.chunk.body))


@dataclass
class _Pending:
    chunk: OutboxChunk
    proven: Proven
    receipt: dict[str, Any]
    held: bool
    since: float


class Uploader:
    def __init__(self, outbox: Outbox, transport: Transport, verifier: ReceiptVerifier,
                 pinned_server_key: str, *, workers: int = 4, patience: float = 30.0,
                 backoff: Backoff | None = None,
                 on_progress: Callable[[SyncReport], None] | None = None) -> None:
        self.outbox = outbox
        self.transport = transport
        self.verifier = verifier
        self.pinned_server_key = pinned_server_key
        self.workers = max(1, workers)
        self.patience = patience
        self.backoff = backoff or Backoff()
        self.on_progress = on_progress
        self.wakeup = threading.Event()  # set by a recorder when it commits a chunk
        self.report = SyncReport()
        self._given_up: set[ChunkKey] = set()
        self._checked: dict[str, set[tuple[str, int]]] = {}  # encounter -> held (stream, seq)
        self.pacer = Pacer(self.workers)
        self.floor = Floor()
        self._sizes: dict[int, int] = {}  # priority -> size of the last chunk claimed
        self._expected: tuple[float, set[int]] = (0.0, set())
        self._inflight: dict[Future[dict[str, Any]], _Flight] = {}
        self._pending: list[_Pending] = []
        self._acks: list[tuple[ChunkKey, dict[str, Any], bool]] = []
        self._shook_hands = False
        self._last_commit = 0.0
        self._next_prepare = 0.0
        self._stall_until = 0.0  # global backoff after a failed handshake/creation
        self._stall_attempts = 0
        self._seen_version = -1

    # -- the loop -------------------------------------------------------------------------
    def drain(self, more_coming: Callable[[], bool] = lambda: False,
              done: Callable[[], bool] = lambda: False,
              hand_over: Callable[[], None] = lambda: None) -> SyncReport:
        """Send until nothing sendable is left; `more_coming` is True while recording goes on;
        `done` says the caller's own chunks are all acknowledged: then it starts nothing more,
        calls `hand_over` (another process may take over at once: it leaves this process's
        uploads alone) and settles what is in flight."""
        self.outbox.requeue_interrupted(lambda pid: pid != os.getpid() and pid_alive(pid))
        self._next_prepare = 0.0  # look for encounters at once (prepare() may have run before)
        last_progress, was_coming = time.monotonic(), True
        with ThreadPoolExecutor(3 * self.workers, thread_name_prefix="upload") as pool:
            try:
                while self.report.fatal is None:
                    if was_coming and not more_coming():
                        was_coming, last_progress = False, time.monotonic()  # patience from now
                    if not was_coming and done():
                        hand_over()
                        break
                    self._prepare()
                    self._fill(pool)
                    self._collect(timeout=FILL_EVERY)
                    if self._commit():
                        last_progress = time.monotonic()
                    if self._inflight or self._pending:
                        continue
                    if self._finished(more_coming, last_progress):
                        break
                    self._idle()
            finally:
                self._wind_down()
        self.report.remaining = self.outbox.remaining()
        return self.report

    def _wind_down(self) -> None:
        """Settle what is in flight, link what is pending, commit, hand back what was claimed."""
        while self._inflight:
            self._collect(timeout=1.0)
        self._link_pending(force=self.report.fatal is None)
        for item in self._pending:
            self.outbox.release(item.chunk.key, None, count_attempt=False)
        self._pending.clear()
        self._commit(whatever=True)

    def _finished(self, more_coming: Callable[[], bool], last_progress: float) -> bool:
        if more_coming():
            return False
        if self.outbox.remaining() - len(self._given_up) <= 0:
            return True
        return time.monotonic() - last_progress > self.patience

    def _idle(self) -> None:
        """Wait until a chunk is due, this process queues one (wakeup) or another process
        commits to the outbox (data_version), whichever comes first."""
        due = self.outbox.next_due()
        pause = 0.5 if due is None else min(0.5, max(0.0, due - time.time()))
        pause = max(pause, min(0.5, self._stall_until - time.monotonic()))
        until = time.monotonic() + max(pause, 0.01)
        while True:
            if self.wakeup.wait(max(0.0, min(LOOK_EVERY, until - time.monotonic()))):
                self._next_prepare = 0.0
                break
            version = self.outbox.data_version()
            if version != self._seen_version:
                self._seen_version = version
                self._next_prepare = 0.0
                break
            if time.monotonic() >= until:
                break
        self.wakeup.clear()

    # -- per-encounter preparation ---------------------------------------------------------------
    def prepare(self) -> None:
        """Handshake, log in and learn what the server holds, before sending (a process that
        may take the upload over does this while it waits)."""
        self._prepare()

    def _prepare(self) -> None:
        now = time.monotonic()
        if now < max(self._next_prepare, self._stall_until):
            return
        self._next_prepare = now + PREPARE_EVERY
        self.outbox.requeue_interrupted(pid_alive)  # a process that handed over, then died
        try:
            if not self._shook_hands:
                self._handshake()
            for row in self.outbox.encounters_to_create():
                self._create(str(row["id"]), str(row["started_at"]))
            for encounter_id in self.outbox.encounters_with_queued():
                if encounter_id not in self._checked:
                    self._check_holdings(encounter_id)
            if self._stall_attempts:
                self._stall_attempts = 0
                self._reachable()
        except NetworkError as exc:
            self._stall(str(exc), None)
        except ServerRefusal as exc:
            if not exc.retryable:
                self.report.fatal = exc
            self._stall(str(exc), exc.retry_after)
        except UntrustedServer as exc:
            self.report.fatal = exc

    def _stall(self, message: str, retry_after: float | None) -> None:
        self._unreachable(message)
        delay = self.backoff.delay(self._stall_attempts, retry_after)
        self._stall_until = time.monotonic() + delay
        self._stall_attempts += 1
        self._notify()

    def _handshake(self) -> None:
        key = self.transport.server_info().get("server_key")
        if key != self.pinned_server_key:
            raise UntrustedServer(
                f"the server now presents key {key!r}, not the key pinned at registration "
                f"({self.pinned_server_key!r}); refusing to trust its receipts")
        self._shook_hands = True

    def _create(self, encounter_id: str, started_at: str) -> None:
        created = self.transport.create_encounter(encounter_id, started_at)
        self.outbox.mark_encounter_created(encounter_id)
        if created.get("created") is True:
            self._checked[encounter_id] = set()  # new on the server: it holds nothing
        else:
            self._checked.pop(encounter_id, None)  # existed already: ask what it holds

    def _check_holdings(self, encounter_id: str) -> None:
        try:
            info = self.transport.encounter(encounter_id)
        except ServerRefusal as exc:
            if exc.status != 404:
                raise
            self.outbox.mark_encounter_missing(encounter_id)
            return
        held: set[tuple[str, int]] = set()
        for stream, holding in (info.get("streams") or {}).items():
            held.update((str(stream), int(seq)) for seq in holding.get("seqs", []))
        self._checked[encounter_id] = held

    # -- sending (workers only talk HTTP) ---------------------------------------------------------
    def _fill(self, pool: ThreadPoolExecutor) -> None:
        """Start what the pacer allows, most urgent priority first; claim only what starts, so
        no claimed chunk waits in this process while a more urgent one arrives."""
        if not self._shook_hands or time.monotonic() < self._stall_until:
            return
        now = time.time()
        waiting = self.outbox.waiting(now, set(self._checked))
        for key in self._given_up:  # refused for this run: queued, but not waiting to go
            priority = stream_priority(key.stream)
            if key.encounter in self._checked and waiting.get(priority):
                waiting[priority] -= 1
        for priority in sorted(p for p, n in waiting.items() if n > 0):
            slots = [flight.slot for flight in self._inflight.values()]
            allowed = self.pacer.allowed(priority, waiting, slots, self._recording(),
                                         self._sizes.get(priority, 64 * 1024))
            if allowed <= 0:
                break  # nothing less urgent may start either
            claimed = self.outbox.claim(allowed, now, self._given_up, set(self._checked),
                                        priority=priority)
            for chunk in claimed:
                self._start(pool, chunk)
            waiting[priority] = max(0, waiting[priority] - len(claimed)) if claimed else 0

    def _start(self, pool: ThreadPoolExecutor, chunk: OutboxChunk) -> None:
        key = chunk.key
        held = (key.stream, key.seq) in self._checked.get(key.encounter, set())
        self._sizes[stream_priority(key.stream)] = len(chunk.body)
        self._inflight[pool.submit(self._transfer, chunk, held)] = \
            _Flight(chunk, held, time.monotonic())

    def _recording(self) -> set[int]:
        """Priorities of streams a live recording of this device is still producing."""
        at, found = self._expected
        if time.monotonic() - at > PREPARE_EVERY / 2:
            found = {stream_priority(s) for s in self.outbox.recording_streams(pid_alive)}
            self._expected = (time.monotonic(), found)
        return found

    def _transfer(self, chunk: OutboxChunk, held: bool) -> dict[str, Any]:
        key = chunk.key
        if not held:
            priority = stream_priority(key.stream)
            if priority == LOG_PRIORITY:
                return self.transport.put_chunk(key.encounter, key.stream, key.seq, chunk.body,
                                                chunk.descriptor)
            body = self.floor.body(chunk.body, priority)
            try:
                return self.transport.put_chunk(key.encounter, key.stream, key.seq, body,
                                                chunk.descriptor)
            finally:
                body.close()
        receipt = self.transport.chunk_receipt(key.encounter, key.stream, key.seq)
        if receipt.get("descriptor") not in (None, chunk.descriptor):
            raise UntrustedServer(f"the server holds another descriptor for chunk {key}")
        return receipt

    def _collect(self, timeout: float) -> None:
        if self._inflight:
            done, _ = wait(list(self._inflight), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                flight = self._inflight.pop(future)
                chunk, held = flight.chunk, flight.held
                try:
                    receipt = future.result()
                    self.pacer.meter.completed(flight.started, len(chunk.body))
                    proven = self.verifier.check(chunk.key, chunk.descriptor, receipt)
                except SyncError as exc:
                    self._failed(chunk, exc, held)
                    continue
                self._pending.append(_Pending(chunk, proven, receipt, held, time.monotonic()))
        self._link_pending(force=not self._inflight)

    # -- linking and committing (main thread) ---------------------------------------------------
    def _link_pending(self, force: bool) -> None:
        """Link checked receipts to the trusted checkpoints, smallest tree first; a receipt
        whose predecessors are still in flight waits for them a little before a proof is
        fetched."""
        self._pending.sort(key=lambda p: (p.chunk.key.encounter, p.proven.size))
        waiting: list[_Pending] = []
        now = time.monotonic()
        for item in self._pending:
            late = force or now - item.since > LINK_WAIT
            try:
                if not self.verifier.link(item.proven, fetch=False):
                    if not late:
                        waiting.append(item)
                        continue
                    self.report.consistency_requests += 1
                    self.verifier.link(item.proven, fetch=True)
            except SyncError as exc:
                self._failed(item.chunk, exc, item.held)
                continue
            self._acks.append((item.chunk.key, item.receipt, item.held))
        self._pending = waiting

    def _commit(self, whatever: bool = False) -> bool:
        """Write the verified acks in one transaction, batching a few rounds' worth: a lost
        (uncommitted) ack costs only a receipt request in the next run."""
        urgent = any(stream_priority(key.stream) < BULK_PRIORITY for key, _r, _h in self._acks)
        due = whatever or urgent or not self._inflight or len(self._acks) >= 2 * self.workers \
            or time.monotonic() - self._last_commit >= COMMIT_EVERY
        if not self._acks or not due:
            return False
        self._last_commit = time.monotonic()
        self.outbox.acknowledge([(key, receipt) for key, receipt, _ in self._acks],
                                self.verifier.take_new_checkpoints())
        for key, _receipt, held in self._acks:
            self.report.acknowledged += 1
            self.report.already_held += held
            self.report.refused.pop(key, None)
        self._acks.clear()
        self.report.waiting_since = None
        self._notify()
        return True

    def _failed(self, chunk: OutboxChunk, exc: SyncError, held: bool) -> None:
        key, report = chunk.key, self.report
        if isinstance(exc, UntrustedServer):
            self.outbox.release(key, f"untrusted receipt: {exc}", count_attempt=False)
            self._given_up.add(key)
            report.untrusted[key] = str(exc)
        elif isinstance(exc, ServerRefusal) and exc.status == 404:
            self.outbox.release(key, str(exc), count_attempt=False)
            if held:  # the server does not hold it after all: upload it
                self._checked.get(key.encounter, set()).discard((key.stream, key.seq))
            else:  # the encounter is gone (e.g. a server restored from backup): create it
                self.outbox.mark_encounter_missing(key.encounter)
                self._checked.pop(key.encounter, None)
                self._next_prepare = 0.0
        elif isinstance(exc, NetworkError) or (isinstance(exc, ServerRefusal) and exc.retryable):
            retry_after = exc.retry_after if isinstance(exc, ServerRefusal) else None
            delay = self.backoff.delay(chunk.attempts, retry_after)
            self.outbox.release(key, str(exc), next_try=time.time() + delay)
            self._unreachable(str(exc))
        else:
            self.outbox.release(key, str(exc), count_attempt=False)
            self._given_up.add(key)
            report.refused[key] = str(exc)
        self._notify()

    def _unreachable(self, message: str) -> None:
        """A failed attempt: the caller hears of it at once (it tells the user within 2 s)."""
        self.report.last_network_error = message
        self.report.retries += 1
        if self.report.waiting_since is None:
            self.report.waiting_since = time.time()

    def _reachable(self) -> None:
        if self.report.waiting_since is not None:
            self.report.waiting_since = None
            self._notify()

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)
