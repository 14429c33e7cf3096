"""The uploader: drains the outbox to the server, verifying every receipt.

A state machine over a Transport (the ApiClient is one; tests put real proxies in between).
One `drain` does, until nothing sendable is left or the network stays dead for `patience` s:

1. handshake: the server still presents the key pinned at registration (else UntrustedServer);
2. for each encounter with chunks to send: create it (PUT, idempotent) or ask which seqs the
   server already holds; held chunks only need their receipt fetched, never a second upload;
3. claim the most urgent due chunks (log, then audio, then video) in batches and send them from
   a thread pool (the workers only talk HTTP);
4. receipts are checked at once (signature, origin, inclusion), then linked to the checkpoints
   already trusted in tree-size order, so most need no consistency request; acknowledgements
   and the checkpoints they proved are committed together, one transaction per round;
5. failures: network trouble and 429/5xx go back to the queue with exponential backoff and full
   jitter (at least Retry-After); other refusals and untrusted receipts are reported and the
   chunk stays unacknowledged for a later run.

A killed process leaves chunks `uploading`; the next drain puts them back in the queue first.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.errors import NetworkError, ServerRefusal, SyncError, UntrustedServer
from sync.outbox import ChunkKey, Outbox, OutboxChunk
from sync.receipts import Proven, ReceiptVerifier

PREPARE_EVERY = 1.0  # seconds between looks for new encounters (sooner when woken)
LINK_WAIT = 0.5  # seconds a receipt may wait for the receipts before it to arrive
COMMIT_EVERY = 0.1  # seconds between acknowledgement transactions while uploads run


class Transport(Protocol):
    def server_info(self) -> dict[str, Any]: ...
    def create_encounter(self, encounter_id: str, started_at: str) -> dict[str, Any]: ...
    def encounter(self, encounter_id: str) -> dict[str, Any]: ...
    def put_chunk(self, encounter_id: str, stream: str, seq: int, body: bytes,
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
        self._ready: deque[OutboxChunk] = deque()
        self._inflight: dict[Future[dict[str, Any]], tuple[OutboxChunk, bool]] = {}
        self._pending: list[_Pending] = []
        self._acks: list[tuple[ChunkKey, dict[str, Any], bool]] = []
        self._shook_hands = False
        self._last_commit = 0.0
        self._next_prepare = 0.0
        self._stall_until = 0.0  # global backoff after a failed handshake/creation
        self._stall_attempts = 0

    # -- the loop -------------------------------------------------------------------------
    def drain(self, more_coming: Callable[[], bool] = lambda: False) -> SyncReport:
        """Send until nothing sendable is left; `more_coming` is True while recording goes on."""
        self.outbox.requeue_interrupted()
        last_progress, was_coming = time.monotonic(), True
        with ThreadPoolExecutor(self.workers, thread_name_prefix="upload") as pool:
            try:
                while self.report.fatal is None:
                    if was_coming and not more_coming():
                        was_coming, last_progress = False, time.monotonic()  # patience from now
                    self._prepare()
                    self._fill(pool)
                    self._collect(timeout=0.25)
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
        while self._ready:
            self.outbox.release(self._ready.popleft().key, None, count_attempt=False)

    def _finished(self, more_coming: Callable[[], bool], last_progress: float) -> bool:
        if more_coming():
            return False
        if self.outbox.remaining() - len(self._given_up) <= 0:
            return True
        return time.monotonic() - last_progress > self.patience

    def _idle(self) -> None:
        due = self.outbox.next_due()
        pause = 0.5 if due is None else min(0.5, max(0.0, due - time.time()))
        pause = max(pause, min(0.5, self._stall_until - time.monotonic()))
        if self.wakeup.wait(max(pause, 0.01)):
            self._next_prepare = 0.0
        self.wakeup.clear()

    # -- per-encounter preparation ---------------------------------------------------------------
    def _prepare(self) -> None:
        now = time.monotonic()
        if now < max(self._next_prepare, self._stall_until):
            return
        self._next_prepare = now + PREPARE_EVERY
        try:
            if not self._shook_hands:
                self._handshake()
            for row in self.outbox.encounters_to_create():
                self._create(str(row["id"]), str(row["started_at"]))
            for encounter_id in self.outbox.encounters_with_queued():
                if encounter_id not in self._checked:
                    self._check_holdings(encounter_id)
            self._stall_attempts = 0
        except NetworkError as exc:
            self._stall(str(exc), None)
        except ServerRefusal as exc:
            if not exc.retryable:
                self.report.fatal = exc
            self._stall(str(exc), exc.retry_after)
        except UntrustedServer as exc:
            self.report.fatal = exc

    def _stall(self, message: str, retry_after: float | None) -> None:
        self.report.last_network_error = message
        self.report.retries += 1
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
        if not self._shook_hands or time.monotonic() < self._stall_until:
            return
        while len(self._inflight) < 2 * self.workers:
            if not self._ready:
                self._ready.extend(self.outbox.claim(
                    4 * self.workers, time.time(), self._given_up, set(self._checked)))
                if not self._ready:
                    return
            chunk = self._ready.popleft()
            held = (chunk.key.stream, chunk.key.seq) in self._checked.get(chunk.key.encounter,
                                                                          set())
            self._inflight[pool.submit(self._transfer, chunk, held)] = (chunk, held)

    def _transfer(self, chunk: OutboxChunk, held: bool) -> dict[str, Any]:
        key = chunk.key
        if not held:
            return self.transport.put_chunk(key.encounter, key.stream, key.seq, chunk.body,
                                            chunk.descriptor)
        receipt = self.transport.chunk_receipt(key.encounter, key.stream, key.seq)
        if receipt.get("descriptor") not in (None, chunk.descriptor):
            raise UntrustedServer(f"the server holds another descriptor for chunk {key}")
        return receipt

    def _collect(self, timeout: float) -> None:
        if self._inflight:
            done, _ = wait(list(self._inflight), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                chunk, held = self._inflight.pop(future)
                try:
                    receipt = future.result()
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
        due = whatever or not self._inflight or len(self._acks) >= 2 * self.workers or \
            time.monotonic() - self._last_commit >= COMMIT_EVERY
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
            report.retries += 1
            report.last_network_error = str(exc)
        else:
            self.outbox.release(key, str(exc), count_attempt=False)
            self._given_up.add(key)
            report.refused[key] = str(exc)
        self._notify()

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)
