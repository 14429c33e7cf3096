"""The uploader: drains the outbox to the server, verifying every receipt.

A state machine over a Transport (the ApiClient is one; tests may put a real proxy in between).
One `drain` does, until nothing sendable is left or the network stays dead for `patience` s:

1. handshake: the server still presents the key pinned at registration (else UntrustedServer);
2. for each encounter with chunks to send: create it (PUT, idempotent) or ask which seqs the
   server already holds; held chunks only need their receipt fetched, never a second upload;
3. claim the most urgent due chunks (log, then audio, then video) and send them from a thread
   pool; each receipt is verified (sync/receipts.py) before the chunk is marked acknowledged;
4. failures: network trouble and 429/5xx go back to the queue with exponential backoff and full
   jitter (at least Retry-After); other refusals and untrusted receipts are reported and the
   chunk stays unacknowledged for a later run.

A killed process leaves chunks `uploading`; the next drain puts them back in the queue first.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.errors import NetworkError, ServerRefusal, SyncError, UntrustedServer
from sync.outbox import ChunkKey, Outbox, OutboxChunk
from sync.receipts import ReceiptVerifier


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
    refused: dict[ChunkKey, str] = field(default_factory=dict)
    untrusted: dict[ChunkKey, str] = field(default_factory=dict)
    last_network_error: str | None = None
    remaining: int = 0
    fatal: SyncError | None = None


@dataclass(frozen=True)
class _Outcome:
    chunk: OutboxChunk
    kind: str  # "ack", "held", "retry", "refused", "untrusted", "missing_encounter", "not_held"
    message: str = ""


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
        self._checked: dict[str, set[tuple[str, int]]] = {}  # encounter -> seqs the server holds
        self._shook_hands = False
        self._stall_until = 0.0  # global backoff after a failed handshake/creation
        self._stall_attempts = 0

    # -- the loop -------------------------------------------------------------------------
    def drain(self, more_coming: Callable[[], bool] = lambda: False) -> SyncReport:
        """Send until nothing sendable is left; `more_coming` is True while recording goes on."""
        self.outbox.requeue_interrupted()
        last_progress = time.monotonic()
        was_coming = True
        inflight: dict[Future[_Outcome], OutboxChunk] = {}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="upload") as pool:
            while self.report.fatal is None:
                if was_coming and not more_coming():
                    was_coming = False  # patience counts from the end of the recording
                    last_progress = time.monotonic()
                if time.monotonic() >= self._stall_until:
                    self._prepare()
                room = 2 * self.workers - len(inflight)
                if room > 0 and self._shook_hands and time.monotonic() >= self._stall_until:
                    for chunk in self._claim(room):
                        inflight[pool.submit(self._send, chunk)] = chunk
                if inflight:
                    done, _ = wait(list(inflight), timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        del inflight[future]
                        if self._settle(future.result()):
                            last_progress = time.monotonic()
                    continue
                if self._finished(more_coming, last_progress):
                    break
                self._idle()
        self.report.remaining = self.outbox.remaining()
        return self.report

    def _finished(self, more_coming: Callable[[], bool], last_progress: float) -> bool:
        if more_coming():
            return False
        if self._sendable() == 0:
            return True
        return time.monotonic() - last_progress > self.patience

    def _sendable(self) -> int:
        return self.outbox.remaining() - len(self._given_up)

    def _idle(self) -> None:
        due = self.outbox.next_due()
        now = time.time()
        pause = 0.5 if due is None else min(0.5, max(0.0, due - now))
        pause = max(pause, min(0.5, self._stall_until - time.monotonic()))
        self.wakeup.wait(max(pause, 0.01))
        self.wakeup.clear()

    def _claim(self, room: int) -> list[OutboxChunk]:
        return self.outbox.claim(room, time.time(), self._given_up, set(self._checked))

    # -- per-encounter preparation ---------------------------------------------------------------
    def _prepare(self) -> None:
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
        self._stall_until = time.monotonic() + self.backoff.delay(self._stall_attempts,
                                                                  retry_after)
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
        if created.get("created", None) is True:
            self._checked[encounter_id] = set()
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

    # -- one chunk (runs in a worker thread) -------------------------------------------------
    def _send(self, chunk: OutboxChunk) -> _Outcome:
        key = chunk.key
        held = (key.stream, key.seq) in self._checked.get(key.encounter, set())
        try:
            if held:
                receipt = self.transport.chunk_receipt(key.encounter, key.stream, key.seq)
                if receipt.get("descriptor") not in (None, chunk.descriptor):
                    raise UntrustedServer(f"the server holds a different descriptor for {key}")
            else:
                receipt = self.transport.put_chunk(key.encounter, key.stream, key.seq,
                                                   chunk.body, chunk.descriptor)
            self.verifier.verify(key, chunk.descriptor, receipt)
        except (NetworkError, ServerRefusal, UntrustedServer) as exc:
            return self._failure(chunk, exc, held)
        self.outbox.acknowledge(key, receipt)
        return _Outcome(chunk, "held" if held else "ack")

    def _failure(self, chunk: OutboxChunk, exc: SyncError, held: bool) -> _Outcome:
        key = chunk.key
        if isinstance(exc, UntrustedServer):
            self.outbox.release(key, f"untrusted receipt: {exc}", count_attempt=False)
            return _Outcome(chunk, "untrusted", str(exc))
        if isinstance(exc, ServerRefusal) and exc.status == 404:
            self.outbox.release(key, str(exc), count_attempt=False)
            return _Outcome(chunk, "not_held" if held else "missing_encounter", str(exc))
        if isinstance(exc, NetworkError) or (isinstance(exc, ServerRefusal) and exc.retryable):
            retry_after = exc.retry_after if isinstance(exc, ServerRefusal) else None
            delay = self.backoff.delay(chunk.attempts, retry_after)
            self.outbox.release(key, str(exc), next_try=time.time() + delay)
            return _Outcome(chunk, "retry", str(exc))
        self.outbox.release(key, str(exc), count_attempt=False)
        return _Outcome(chunk, "refused", str(exc))

    # -- bookkeeping (main thread) ---------------------------------------------------------------
    def _settle(self, outcome: _Outcome) -> bool:
        """Account for a finished chunk; True if it was progress."""
        key, report = outcome.chunk.key, self.report
        if outcome.kind in ("ack", "held"):
            report.acknowledged += 1
            report.already_held += outcome.kind == "held"
            report.refused.pop(key, None)
        elif outcome.kind == "retry":
            report.retries += 1
            report.last_network_error = outcome.message
        elif outcome.kind == "not_held":
            self._checked.get(key.encounter, set()).discard((key.stream, key.seq))
        elif outcome.kind == "missing_encounter":
            self.outbox.mark_encounter_missing(key.encounter)
            self._checked.pop(key.encounter, None)
        elif outcome.kind == "untrusted":
            self._given_up.add(key)
            report.untrusted[key] = outcome.message
        else:
            self._given_up.add(key)
            report.refused[key] = outcome.message
        self._notify()
        return outcome.kind in ("ack", "held")

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)
