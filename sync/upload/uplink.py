"""One upload queue per phone: every `record` and `sync` of a state folder shares one uploader.

Each process that has chunks to send runs a `SharedUpload`. At most one of them - the one that
holds the lease - runs the Uploader, and it sends every process's queued chunks (priority across
all streams of the device is only possible from one place, and no chunk is ever in flight
twice). The others only seal and queue: the holder notices their commits within LOOK_EVERY
(uploader.py, SQLite's data_version), so "waking" it needs nothing but the commit itself.

The lease is an exclusive `flock` on `upload.lock` in the state folder, tried without blocking.
The kernel drops it when its holder exits, however it exits (kill -9 included), so a dead holder
never blocks the others; the holder writes its pid into the file for people and tests to read.
A waiting process tries again every POLL seconds and takes over when the holder is gone; the
new holder first puts the chunks a dead holder left `uploading` back in the queue.

A process returns when its OWN chunks are acknowledged (a user runs `record` and expects it to
return when its recording is safe), or when no chunk was acknowledged for `patience` seconds
after its recording ended. The holder publishes "the server is unreachable since ..." in the
outbox's meta table so that waiting processes tell their users too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sync.upload.outbox import ChunkKey, Outbox
from sync.upload.uploader import SyncReport, Uploader

LOCK_FILE = "upload.lock"
POLL = 0.1  # seconds between tries for the lease, and between looks at the outbox
STATUS_KEY = "upload_status"


class UploadLease:
    """The exclusive right to upload for a state folder (an flock, released on any exit)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def holder_pid(folder: Path) -> int | None:
    """The pid written by the process holding the lease (None when nobody uploads)."""
    try:
        text = (Path(folder) / LOCK_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class Status:
    """What the uploading process last said about the server, as every process shows it."""

    waiting_since: float | None  # time.time() of the first failure of an outage; None: fine
    error: str | None
    pid: int | None = None  # the process that said it (only the lease holder's word counts)

    def to_json(self) -> str:
        return json.dumps({"waiting_since": self.waiting_since, "error": self.error,
                           "pid": self.pid})

    @classmethod
    def from_json(cls, text: str | None) -> Status:
        try:
            data = json.loads(text or "{}")
            return cls(data.get("waiting_since"), data.get("error"), data.get("pid"))
        except (ValueError, AttributeError):
            return cls(None, None)


@dataclass
class Outcome:
    report: SyncReport  # this process's own uploads (empty if another process sent them all)
    own_done: bool
    led: bool  # whether this process held the lease at some point


class SharedUpload:
    def __init__(self, folder: Path, outbox: Outbox, make_uploader: Callable[[], Uploader],
                 patience: float, on_status: Callable[[Status], None]) -> None:
        self.lease = UploadLease(folder)
        self.outbox = outbox
        self.make_uploader = make_uploader
        self.patience = patience
        self.on_status = on_status
        self.current: Uploader | None = None  # while this process holds the lease
        self._uploader: Uploader | None = None  # made once, kept across turns as the holder
        self._status = Status(None, None)

    @property
    def report(self) -> SyncReport:
        """What this process's own turns as the uploader did (empty if it never had one)."""
        return self.uploader().report

    def uploader(self) -> Uploader:
        if self._uploader is None:
            uploader = self._uploader = self.make_uploader()
            shown = uploader.on_progress

            def progress(report: SyncReport) -> None:
                status = Status(report.waiting_since, report.last_network_error, os.getpid())
                if (status.waiting_since is None) != (self._status.waiting_since is None):
                    if self.lease.held:
                        self._publish(status)
                    self._status = status
                    self.on_status(status)
                if shown is not None:
                    shown(report)

            uploader.on_progress = progress
        return self._uploader

    def wake(self) -> None:
        """This process queued a chunk: the uploader, if it is ours, looks at once."""
        current = self.current
        if current is not None:
            current.wakeup.set()

    def run(self, own_done: Callable[[], bool],
            more_coming: Callable[[], bool] = lambda: False) -> Outcome:
        """Upload (holding the lease) or wait for the holder, until our own chunks are safe."""
        led, last_progress, acked = False, time.monotonic(), self._acknowledged()
        ready = False
        while self.report.fatal is None:
            if self.lease.try_acquire():
                led = True
                try:
                    self._lead(own_done, more_coming)
                finally:
                    self.lease.release()
                if own_done() or self.report.fatal is not None or not more_coming():
                    return Outcome(self.report, own_done(), led)
                continue
            if own_done() and not more_coming():
                return Outcome(self.report, True, led)
            if not ready:  # so that taking over costs no round trip: handshake, login,
                ready = True  # what the server holds of each encounter
                self.uploader().prepare()
            self._relay()
            now_acked = self._acknowledged()
            if now_acked != acked or more_coming():
                acked, last_progress = now_acked, time.monotonic()
            elif time.monotonic() - last_progress > self.patience:
                self.report.remaining = self.outbox.remaining()
                return Outcome(self.report, False, led)
            time.sleep(POLL)
        return Outcome(self.report, own_done(), led)

    def _lead(self, own_done: Callable[[], bool], more_coming: Callable[[], bool]) -> None:
        self.current = self.uploader()
        try:
            self.current.drain(more_coming, own_done, self.lease.release)
        finally:
            self.current = None

    def _publish(self, status: Status) -> None:
        self._status = status
        with contextlib.suppress(Exception):  # the status line is a courtesy, never a failure
            self.outbox.set_meta(STATUS_KEY, status.to_json())

    def _relay(self) -> None:
        """Show what the uploading process says about the server, when it changes."""
        status = Status.from_json(self.outbox.get_meta(STATUS_KEY))
        if status.pid is None or status.pid != holder_pid(self.lease.path.parent):
            return  # said by a process that no longer uploads
        if (status.waiting_since is None) != (self._status.waiting_since is None):
            self._status = status
            self.on_status(status)

    def _acknowledged(self) -> int:
        return self.outbox.counts().get("acknowledged", 0)


class OwnChunks:
    """The chunks one process waits for: those it recorded, or those queued when it started."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._pending: dict[str, set[tuple[str, int]]] = {}  # encounter -> (stream, seq)
        self.total = 0
        # add() runs in the recording thread, left() in the uploading one; a key is added only
        # after its commit, so under the lock the outbox always lists a new key as pending.
        self._lock = threading.Lock()

    @classmethod
    def queued_now(cls, outbox: Outbox) -> OwnChunks:
        own = cls(outbox)
        for row in outbox.chunks():
            if row["state"] != "acknowledged":
                own.add(ChunkKey(str(row["encounter"]), str(row["stream"]), int(row["seq"])))
        return own

    def add(self, key: ChunkKey) -> None:
        with self._lock:
            self._pending.setdefault(key.encounter, set()).add((key.stream, key.seq))
            self.total += 1

    def left(self) -> int:
        """How many of them are not acknowledged yet (asks the outbox)."""
        with self._lock:
            for encounter in list(self._pending):
                self._pending[encounter] &= self.outbox.unacknowledged(encounter)
                if not self._pending[encounter]:
                    del self._pending[encounter]
            return sum(len(keys) for keys in self._pending.values())

    def done(self) -> bool:
        return self.left() == 0
