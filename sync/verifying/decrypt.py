"""`safehold decrypt`: verify a bundle and open every chunk, reassembling one file per stream.

Each stream becomes one file: the concatenation of its chunks' plaintexts in seq order,
named by what its content is (`audio.m4a`, `video.webm`, else `<stream>.bin`:
report/media_types.py); the event log `log` becomes `log.jsonl`, one JSON object per line. A gap is
never silently closed: every place where seqs are missing, and the byte offset in the output
where the next chunk begins, is recorded (and shown in the report).

Speed and memory: one pass. Every chunk file is read once, on every core at once, by a worker
that both checks it (chunks.py) and opens it (decrypt_chunks.py), streaming its
plaintext in blocks straight to its place in the output (planned beforehand from the age
framing), so memory stays constant whatever the recording's length. Meanwhile this process
checks the server's log and hashes each output as its pieces land, in order. Nothing is kept
unless the whole bundle verifies: the outputs written are deleted again if it does not, and
`outdir` is meant to be a staging folder that is renamed into place only afterwards.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crypto.age import Decryptor, Identity
from crypto.errors import CryptoError
from sync.bundle.files import READ_BLOCK, BundleReader
from sync.report.media_types import name_by_content
from sync.verifying.chunks import ChunkOutcome
from sync.verifying.decrypt_chunks import (
    JobResult,
    Piece,
    StreamPlanner,
    close_worker,
    init_worker,
    run_job,
)
from sync.verifying.findings import ERROR, ChunkRecord, Problem, StreamSummary, seq_ranges
from sync.verifying.log import load_log
from sync.verifying.verify import Verification, begin_verification, conclude_verification
from sync.workers import ordered_map

LOG_STREAM = "log"
# The event log and its addenda (notes added after the log closed): JSON lines, not media.
EVENT_STREAMS = frozenset({LOG_STREAM, "addenda"})
Progress = Callable[[int], None]


@dataclass
class Gap:
    missing: list[int]  # seqs absent here (never received, or not decryptable)
    at_offset: int  # the output continues here with the next chunk present
    reason: str


@dataclass
class StreamOutput:
    stream: str
    file: str  # name inside the output folder
    pieces: list[Piece] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # seqs the identity could not open
    size: int = 0
    sha256: str = ""
    closed: bool = False  # ends with the stream's final chunk
    kind: str | None = None  # what its content is, by its signature (sync/report/media_types.py)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decryption:
    """What `verify_and_decrypt` established and wrote; no outputs unless it verified."""

    verification: Verification
    outputs: list[StreamOutput] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # chunks that could not be opened


def output_name(stream: str) -> str:
    return f"{stream}.jsonl" if stream in EVENT_STREAMS else f"{stream}.bin"


def verify_and_decrypt(reader: BundleReader, identities: Sequence[Identity], outdir: Path,
                       workers: int | None = None,
                       progress: Progress | None = None) -> Decryption:
    """Verify the bundle and, in the same pass, decrypt every chunk into `outdir`.

    If the bundle does not verify, every file written is deleted again and no output is
    returned: nothing from an altered bundle is kept."""
    result, entries, strays = begin_verification(reader)
    if result.trust is None:
        return Decryption(result)
    media = sorted({e.stream for e in entries if e.stream not in EVENT_STREAMS})
    paths = {stream: outdir / output_name(stream) for stream in media}
    for path in paths.values():
        path.touch(exist_ok=False)
    planner = StreamPlanner(reader, {stream: str(path) for stream, path in paths.items()})
    jobs = (planner.job(entry) for entry in entries)
    hashing = _OutputHashing(paths)
    try:
        with ordered_map(run_job, jobs, len(entries), workers, init_worker,
                         (str(reader.path), result.trust, identities)) as done:
            view = load_log(reader, result.trust, result.problems)  # while the workers run
            outcomes = list(_collect(done, hashing, progress))
        conclude_verification(reader, result, view, outcomes, strays)
    except BaseException:
        _remove(paths.values())
        raise
    finally:
        close_worker()
        hashing.close()
    if not result.ok:
        _remove(paths.values())
        return Decryption(result)
    return _finish(reader, result, identities, outdir, hashing)


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _collect(done: Iterator[JobResult], hashing: _OutputHashing,
             progress: Progress | None) -> Iterator[ChunkOutcome]:
    for job_result in done:
        hashing.landed(job_result)
        if progress is not None:
            progress(1)
        yield job_result.outcome


class _OutputHashing:
    """The SHA-256 of each output as its pieces land, in order, leaving out the ones that
    failed (so it is the digest of the output once they are cut out). It runs here while the
    workers decrypt, so the digest costs no extra pass over the output."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.hashers = {stream: hashlib.sha256() for stream in paths}
        self.pieces: dict[str, list[Piece]] = {stream: [] for stream in paths}
        self.failed: dict[str, list[Piece]] = {stream: [] for stream in paths}
        self._fds: dict[str, int] = {}

    def landed(self, job_result: JobResult) -> None:
        piece, stream = job_result.piece, job_result.outcome.record.stream
        if piece is None:
            return
        self.pieces[stream].append(piece)
        if job_result.error is not None:
            self.failed[stream].append(piece)
            return
        if stream not in self._fds:  # unbuffered: a read-ahead buffer would hold stale bytes
            self._fds[stream] = os.open(self.paths[stream], os.O_RDONLY)
        fd, hasher = self._fds[stream], self.hashers[stream]
        done = 0
        while done < piece.length:
            block = os.pread(fd, min(piece.length - done, READ_BLOCK), piece.offset + done)
            if not block:
                raise OSError(f"{self.paths[stream]} is shorter than planned")
            hasher.update(block)
            done += len(block)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _finish(reader: BundleReader, result: Verification, identities: Sequence[Identity],
            outdir: Path, hashing: _OutputHashing) -> Decryption:
    """The bundle verified: settle each output (failed chunks cut out, gaps named)."""
    by_stream: dict[str, list[ChunkRecord]] = {}
    for chunk in sorted(result.chunks, key=lambda c: (c.stream, c.seq)):
        by_stream.setdefault(chunk.stream, []).append(chunk)
    summaries = {s.name: s for s in result.streams}
    done = Decryption(result)
    for stream, chunks in sorted(by_stream.items()):
        out = StreamOutput(stream, output_name(stream))
        if stream in EVENT_STREAMS:
            _decrypt_log(reader, chunks, identities, outdir / out.file, out)
            out.kind = ("event log (JSON lines)" if stream == LOG_STREAM else
                        "event log addenda: notes added after the recording stopped (JSON lines)")
        else:
            _settle_media(out, hashing, outdir / out.file)
            if out.size:
                out.file, out.kind = name_by_content(outdir, out.file, stream)
        out.closed = chunks[-1].final is True and not out.failed
        done.problems.extend(_failure_problems(out))
        _record_gaps(out, summaries.get(stream))
        done.outputs.append(out)
    return done


def _settle_media(out: StreamOutput, hashing: _OutputHashing, path: Path) -> None:
    failed = hashing.failed[out.stream]
    kept = [p for p in hashing.pieces[out.stream] if p not in failed]
    out.failed = [p.seq for p in failed]
    out.pieces = _compact(path, kept) if failed else kept
    out.size = sum(p.length for p in kept)
    out.sha256 = hashing.hashers[out.stream].hexdigest()


def _open_chunk(reader: BundleReader, name: str, identities: Sequence[Identity],
                sink: Callable[[bytes], None]) -> int:
    """Stream one age file through a Decryptor into `sink`; returns the plaintext length."""
    decryptor = Decryptor(identities)
    written = 0
    with reader.open(name) as stream:
        while block := stream.read(READ_BLOCK):
            plain = decryptor.update(block)
            if plain:
                sink(plain)
                written += len(plain)
    plain = decryptor.finalize()
    if plain:
        sink(plain)
        written += len(plain)
    return written


def _compact(path: Path, kept: list[Piece]) -> list[Piece]:
    """Rewrite `path` with only the kept pieces, in order (failed chunks leave no bytes)."""
    tmp = path.with_name(path.name + ".compact")
    moved: list[Piece] = []
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for piece in kept:
            moved.append(Piece(piece.seq, dst.tell(), piece.length, piece.age_file))
            src.seek(piece.offset)
            left = piece.length
            while left:
                block = src.read(min(left, READ_BLOCK))
                dst.write(block)
                left -= len(block)
    os.replace(tmp, path)
    return moved


def _decrypt_log(reader: BundleReader, chunks: list[ChunkRecord],
                 identities: Sequence[Identity], path: Path, out: StreamOutput) -> None:
    """The event log: one JSON object per chunk, written one per line (small; sequential)."""
    hasher = hashlib.sha256()
    with open(path, "wb") as dst:
        for chunk in chunks:
            parts: list[bytes] = []
            try:
                _open_chunk(reader, chunk.age_file, identities, parts.append)
            except CryptoError:
                out.failed.append(chunk.seq)
                continue
            entry = b"".join(parts).rstrip(b"\n") + b"\n"
            out.pieces.append(Piece(chunk.seq, dst.tell(), len(entry), chunk.age_file))
            dst.write(entry)
            hasher.update(entry)
        out.size, out.sha256 = dst.tell(), hasher.hexdigest()


def _failure_problems(out: StreamOutput) -> list[Problem]:
    if not out.failed:
        return []
    return [Problem(ERROR, "decrypt", f"{out.stream}: seq {seq_ranges(out.failed)} could not be "
                    "decrypted with the given identity (sealed to other keys?); the output "
                    f"{out.file} leaves them out and the report marks the gap", stream=out.stream)]


def _record_gaps(out: StreamOutput, summary: StreamSummary | None) -> None:
    """Where seqs are absent between the pieces written (and before the first)."""
    failed = set(out.failed)
    expected = 0
    for piece in out.pieces:
        if piece.seq > expected:
            missing = list(range(expected, piece.seq))
            reason = ("could not be decrypted" if set(missing) <= failed else
                      "never reached the server" if not failed & set(missing) else
                      "never reached the server or could not be decrypted")
            out.gaps.append(Gap(missing, piece.offset, reason))
        expected = piece.seq + 1
    tail = sorted(s for s in failed if s >= expected)
    if tail:
        out.gaps.append(Gap(tail, sum(p.length for p in out.pieces), "could not be decrypted"))
    if summary is not None and summary.cut_off:
        out.closed = False
