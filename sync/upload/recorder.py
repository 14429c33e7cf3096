"""The recorder: cuts a capture into chunks, seals and signs each one, and commits it.

Each chunk of `chunk_bytes` plaintext becomes one age file sealed to the pinned contacts and the
owner's recovery recipient, with the `safehold-slot` stanza naming its place, and a descriptor
signed by the device key with the device time. The chunk is committed to the outbox before the
uploader can see it, so whatever happens to the network or to this process afterwards, a chunk
that was recorded is never lost.

Alongside, the event log stream `log` gets one JSON object per chunk (a line of JSON, sealed as
its own chunk): `start`, one `chunk` entry per media chunk, and `stop`. The stop entry is the
log's final chunk, unless another recording of the same encounter is still running.

With `rate` the recorder paces itself like a live capture: the chunk whose last byte is the
N-th of the input is released N / rate seconds after the start.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from crypto import age
from crypto.descriptor import describe_chunk, format_time, sign_descriptor
from crypto.errors import MalformedError
from crypto.slot import Slot, check_encounter, check_stream
from sync.errors import StateError
from sync.upload.eventlog import encode_entry
from sync.upload.outbox import ChunkKey, Outbox, SealedChunk

LOG_STREAM = "log"


def device_time() -> str:
    return format_time(datetime.now(UTC))


class Sealer:
    """Seals plaintext into a slotted age file and signs its descriptor."""

    def __init__(self, device_signing_key: str, recipients: Sequence[str],
                 clock: Callable[[], str] = device_time) -> None:
        if not recipients:
            raise StateError("no recipient to seal to (the recovery recipient is missing)")
        self.device_signing_key = device_signing_key
        # Replaced as a whole (never changed in place) when a contact is pinned mid-recording.
        self.recipients = list(recipients)
        self.clock = clock
        self.sealed_alone = 0  # chunks sealed to a single recipient: the owner's recovery key

    def seal(self, plaintext: bytes, slot: Slot) -> SealedChunk:
        at = self.clock()
        recipients = self.recipients
        self.sealed_alone += len(recipients) == 1
        body = age.encrypt(plaintext, recipients, slot=slot)
        descriptor = describe_chunk(body, slot, at)
        note = sign_descriptor(descriptor, self.device_signing_key)
        return SealedChunk(key=ChunkKey(slot.encounter, slot.stream, slot.seq), final=slot.final,
                           body=body, descriptor=note, sha256=descriptor.sha256, sealed_at=at)


@dataclass(frozen=True)
class RecordOptions:
    stream: str = "audio"
    chunk_bytes: int = 256 * 1024
    encounter: str | None = None
    rate: float | None = None  # bytes per second of the simulated capture


@dataclass
class RecordingSummary:
    encounter: str
    stream: str
    chunks: int = 0
    plaintext_bytes: int = 0
    log_entries: int = 0
    log_closed: bool = False


def read_chunks(source: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """Cut `source` into `size`-byte pieces, flagging the last; empty input gives one empty."""
    while True:
        data = _read_full(source, size)
        if len(data) < size:
            yield data, True
            return
        last = _at_eof(source)
        yield data, last
        if last:
            return


def _read_full(source: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        part = source.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def _at_eof(source: BinaryIO) -> bool:
    peek = getattr(source, "peek", None)
    # Without peek the next read finds EOF and the recording ends with an empty final chunk.
    return peek is not None and not peek(1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Recorder:
    def __init__(self, outbox: Outbox, sealer: Sealer, options: RecordOptions, *,
                 on_chunk: Callable[[SealedChunk], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if options.chunk_bytes <= 0:
            raise StateError("--chunk-bytes must be positive")
        if options.rate is not None and options.rate <= 0:
            raise StateError("--rate must be positive")
        try:
            check_stream(options.stream)
            if options.encounter is not None:
                check_encounter(options.encounter)
        except MalformedError as exc:
            raise StateError(str(exc))
        if options.stream == LOG_STREAM:
            raise StateError("the stream name `log` is reserved for the event log")
        self.outbox = outbox
        self.sealer = sealer
        self.options = options
        self.on_chunk = on_chunk
        self.sleep = sleep
        self.monotonic = monotonic
        self.encounter = options.encounter or str(uuid.uuid4())
        self.summary = RecordingSummary(self.encounter, options.stream)
        self._session: int | None = None

    def begin(self) -> str:
        """Open the encounter (new or continued) and log the start; returns the encounter id."""
        encounter, stream = self.encounter, self.options.stream
        if self.outbox.stream_closed(encounter, LOG_STREAM):
            raise StateError(f"encounter {encounter} was stopped (its event log is closed); "
                             "record into a new encounter, or run recordings of one encounter "
                             "at the same time")
        if self.outbox.stream_closed(encounter, stream):
            raise StateError(f"stream {stream!r} of encounter {encounter} already ended; "
                             "use another --stream")
        self.outbox.add_encounter(encounter, device_time())
        self._session = self.outbox.open_session(encounter, stream, os.getpid())
        self._log({"event": "start", "stream": stream, "chunk_bytes": self.options.chunk_bytes,
                   "rate": self.options.rate})
        return encounter

    def run(self, source: BinaryIO) -> RecordingSummary:
        """Record `source` to its end, then log the stop."""
        if self._session is None:
            self.begin()
        started = self.monotonic()
        seq = self.outbox.next_seq(self.encounter, self.options.stream)
        for data, last in read_chunks(source, self.options.chunk_bytes):
            self._pace(started, self.summary.plaintext_bytes + len(data))
            slot = Slot(self.encounter, self.options.stream, seq, last)
            chunk = self.sealer.seal(data, slot)
            self.outbox.add_chunk(chunk)
            self.summary.chunks += 1
            self.summary.plaintext_bytes += len(data)
            self._notify(chunk)
            self._log({"event": "chunk", "stream": slot.stream, "seq": seq, "size": len(data),
                       "final": last, "at": chunk.sealed_at})
            seq += 1
        self._log({"event": "stop", "stream": self.options.stream,
                   "chunks": self.summary.chunks, "bytes": self.summary.plaintext_bytes},
                  closing=True)
        return self.summary

    def _pace(self, started: float, bytes_captured: int) -> None:
        if self.options.rate is None:
            return
        due = started + bytes_captured / self.options.rate
        delay = due - self.monotonic()
        if delay > 0:
            self.sleep(delay)

    def _log(self, entry: dict[str, Any], closing: bool = False) -> None:
        def seal(seq: int, final: bool) -> SealedChunk:
            line = {"at": device_time(), **entry}
            slot = Slot(self.encounter, LOG_STREAM, seq, final)
            return self.sealer.seal(encode_entry(line), slot)

        chunk = self.outbox.add_log_entry(self.encounter, seal,
                                          self._session if closing else None, pid_alive)
        if chunk is not None:
            self.summary.log_entries += 1
            self.summary.log_closed = chunk.final
            self._notify(chunk)

    def _notify(self, chunk: SealedChunk) -> None:
        if self.on_chunk is not None:
            self.on_chunk(chunk)
