"""One pass per chunk for `decrypt`: check it as `verify` does and open it, reading it once.

A worker reads a chunk's age file in blocks; each block goes to the SHA-256 of the checks and
to a Decryptor, whose authenticated plaintext is written (os.pwrite) straight to the chunk's
planned place in its stream's output file. The place is planned by the parent beforehand from
the age framing alone (header length and file size; no key needed), so the workers need not
wait for each other. Whether the whole bundle verifies is known only once every chunk is
checked: the caller writes into a staging folder and deletes what was written if it does not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.age import Decryptor, Header, Identity
from crypto.age.format import find_header_end
from crypto.errors import AuthenticationError, CryptoError
from sync.bundle.files import AGE_SUFFIX, BundleReader, ChunkEntry
from sync.verifying.chunks import HEAD_BYTES, ChunkOutcome, check_chunk, plaintext_size
from sync.verifying.findings import Trust
from sync.verifying.verify import chunk_context

PLAN_BYTES = 4096  # enough for the header of a chunk sealed to a dozen recipients


@dataclass
class Piece:
    seq: int
    offset: int  # where this chunk's plaintext starts in the output file
    length: int
    age_file: str


@dataclass
class Job:
    """One chunk to check and, if `piece` is set, to open into `output` at its place."""

    entry: ChunkEntry
    output: str | None = None  # path of the stream's output file
    piece: Piece | None = None


@dataclass
class JobResult:
    outcome: ChunkOutcome
    piece: Piece | None
    error: str | None  # why the chunk could not be opened (None: opened, or not asked to)


def planned_length(reader: BundleReader, name: str) -> int:
    """The plaintext length of an age file from its header's length and its size (0 if that
    cannot be read: the chunk's own checks then say why)."""
    with reader.open(name) as stream:
        head = stream.read(PLAN_BYTES)
        end = find_header_end(head)
        if end < 0 and len(head) == PLAN_BYTES:
            head += stream.read(HEAD_BYTES - PLAN_BYTES)
            end = find_header_end(head)
    length = plaintext_size(reader.size(name), end) if end >= 0 else None
    return length or 0


class StreamPlanner:
    """Lays the chunks of each stream end to end, in seq order, as they are planned."""

    def __init__(self, reader: BundleReader, outputs: dict[str, str]) -> None:
        self.reader = reader
        self.outputs = outputs  # stream -> output file path, for the streams written here
        self.ends: dict[str, int] = {}

    def job(self, entry: ChunkEntry) -> Job:
        output = self.outputs.get(entry.stream)
        if output is None or AGE_SUFFIX not in entry.files:
            return Job(entry)
        length = planned_length(self.reader, entry.age)
        offset = self.ends.get(entry.stream, 0)
        self.ends[entry.stream] = offset + length
        return Job(entry, output, Piece(entry.seq, offset, length, entry.age))


class PieceWriter:
    """Opens one age file as its blocks are fed, writing the plaintext within its piece only."""

    def __init__(self, identities: Sequence[Identity], fd: int, piece: Piece) -> None:
        self.decryptor = Decryptor(identities)
        self.fd = fd
        self.position = piece.offset
        self.end = piece.offset + piece.length
        self.error: str | None = None

    def feed(self, block: bytes) -> None:
        if self.error is None:
            self._guarded(lambda: self.decryptor.update(block))

    def header(self) -> Header | None:
        return self.decryptor.header

    def finish(self) -> str | None:
        if self.error is None:
            self._guarded(self.decryptor.finalize)
        if self.error is None and self.position != self.end:
            self.error = "AuthenticationError: plaintext length differs from the age framing"
        return self.error

    def _guarded(self, step: Callable[[], bytes]) -> None:
        try:
            self._write(step())
        except CryptoError as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _write(self, plain: bytes) -> None:
        if self.position + len(plain) > self.end:  # never spill into the next piece
            raise AuthenticationError("plaintext is longer than its age framing says")
        if plain:
            os.pwrite(self.fd, plain, self.position)
            self.position += len(plain)


_WORKER: dict[str, Any] = {}  # the state of a worker process (or of this one, without a pool)


def init_worker(bundle: str, trust: Trust, identities: Sequence[Identity]) -> None:
    _WORKER.update(ctx=chunk_context(bundle, trust), identities=identities, fds={})


def run_job(job: Job) -> JobResult:
    """Check one chunk and, if asked, open it into its place; never raises for bad content."""
    if job.piece is None or job.output is None:
        return JobResult(check_chunk(_WORKER["ctx"], job.entry), None, None)
    fds: dict[str, int] = _WORKER["fds"]
    if job.output not in fds:
        fds[job.output] = os.open(job.output, os.O_WRONLY)
    writer = PieceWriter(_WORKER["identities"], fds[job.output], job.piece)
    outcome = check_chunk(_WORKER["ctx"], job.entry, writer)
    return JobResult(outcome, job.piece, writer.finish())


def close_worker() -> None:
    """Close what `init_worker` opened in this process (worker processes just exit)."""
    for fd in _WORKER.pop("fds", {}).values():
        os.close(fd)
    ctx = _WORKER.pop("ctx", None)
    if ctx is not None:
        ctx.reader.close()
    _WORKER.clear()
