"""`safehold decrypt`: open every chunk of a verified bundle and reassemble one file per stream.

Each stream becomes one file: the concatenation of its chunks' plaintexts in seq order
(`<stream>.bin`; the event log `log` becomes `log.jsonl`, one JSON object per line). A gap is
never silently closed: every place where seqs are missing, and the byte offset in the output
where the next chunk begins, is recorded (and shown in the report).

Speed and memory: the plaintext length of every chunk follows from its age framing (no key
needed), so each chunk's place in its output file is known before anything is decrypted. The
chunks are then decrypted on every core at once, each streamed in blocks straight to its offset
(os.pwrite), so memory stays constant whatever the recording's length.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crypto.age import Decryptor, Identity
from crypto.errors import AuthenticationError, CryptoError
from sync.bundle import READ_BLOCK, BundleReader
from sync.findings import ERROR, ChunkRecord, Problem, StreamSummary, seq_ranges
from sync.verify import Verification
from sync.workers import chunksize, process_pool, worker_count

LOG_STREAM = "log"
Progress = Callable[[int], None]


class RefusedToDecrypt(Exception):
    """The bundle did not verify; nothing is decrypted from an altered bundle."""


@dataclass
class Piece:
    seq: int
    offset: int  # where this chunk's plaintext starts in the output file
    length: int
    age_file: str


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def output_name(stream: str) -> str:
    return "log.jsonl" if stream == LOG_STREAM else f"{stream}.bin"


def decrypt_bundle(reader: BundleReader, verification: Verification,
                   identities: Sequence[Identity], outdir: Path, workers: int | None = None,
                   progress: Progress | None = None) -> tuple[list[StreamOutput], list[Problem]]:
    """Decrypt every chunk of a verified bundle into `outdir`; returns outputs and failures."""
    if not verification.ok:
        raise RefusedToDecrypt(f"{verification.bundle} did not verify "
                               f"({len(verification.errors)} errors); nothing was decrypted")
    by_stream: dict[str, list[ChunkRecord]] = defaultdict(list)
    for chunk in sorted(verification.chunks, key=lambda c: (c.stream, c.seq)):
        by_stream[chunk.stream].append(chunk)
    summaries = {s.name: s for s in verification.streams}
    outputs: list[StreamOutput] = []
    problems: list[Problem] = []
    for stream, chunks in sorted(by_stream.items()):
        out = StreamOutput(stream, output_name(stream))
        if stream == LOG_STREAM:
            _decrypt_log(reader, chunks, identities, outdir / out.file, out, progress)
        else:
            _decrypt_media(reader, chunks, identities, outdir / out.file, out, workers,
                           progress)
        problems.extend(_failure_problems(out))
        _record_gaps(out, summaries.get(stream))
        outputs.append(out)
    return outputs, problems


def _plan(chunks: list[ChunkRecord]) -> list[Piece]:
    pieces, offset = [], 0
    for chunk in chunks:
        length = chunk.plaintext_size or 0
        pieces.append(Piece(chunk.seq, offset, length, chunk.age_file))
        offset += length
    return pieces


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


_WORKER: dict[str, Any] = {}  # the state of a decrypting worker process


def _init_worker(bundle: str, identities: Sequence[Identity], output: str) -> None:
    _WORKER.update(reader=BundleReader(Path(bundle)), identities=identities,
                   fd=os.open(output, os.O_WRONLY))


def _piece_in_worker(piece: Piece) -> str | None:
    return _write_piece(_WORKER["reader"], _WORKER["identities"], _WORKER["fd"], piece)


def _write_piece(reader: BundleReader, identities: Sequence[Identity], fd: int,
                 piece: Piece) -> str | None:
    """Decrypt one chunk to its place in the output; the failure's reason, or None."""
    position = piece.offset

    def sink(data: bytes) -> None:
        nonlocal position
        if position + len(data) > piece.offset + piece.length:  # never spill over
            raise AuthenticationError("plaintext is longer than its age framing says")
        os.pwrite(fd, data, position)
        position += len(data)

    try:
        if _open_chunk(reader, piece.age_file, identities, sink) != piece.length:
            raise AuthenticationError("plaintext length differs from the age framing")
    except CryptoError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _decrypt_media(reader: BundleReader, chunks: list[ChunkRecord],
                   identities: Sequence[Identity], path: Path, out: StreamOutput,
                   workers: int | None, progress: Progress | None) -> None:
    pieces = _plan(chunks)
    with open(path, "wb") as create:
        create.truncate(sum(p.length for p in pieces))
    count = worker_count(len(pieces), workers)
    pool = None
    if count == 1:
        fd = os.open(path, os.O_WRONLY)
        results: Iterable[str | None] = (_write_piece(reader, identities, fd, p) for p in pieces)
    else:
        pool = process_pool(count, _init_worker, (str(reader.path), identities, str(path)))
        results = pool.map(_piece_in_worker, pieces, chunksize=chunksize(len(pieces), count))
    failed: list[Piece] = []
    try:
        out.sha256 = _hash_in_order(path, pieces, results, failed, progress)
    finally:
        if pool is None:
            os.close(fd)
        else:
            pool.shutdown(cancel_futures=True)
    kept = [p for p in pieces if p not in failed]
    out.failed = [p.seq for p in failed]
    out.pieces = _compact(path, kept) if failed else kept
    out.size = sum(p.length for p in kept)
    out.closed = bool(chunks) and chunks[-1].final is True and not out.failed


def _hash_in_order(path: Path, pieces: list[Piece], results: Iterable[str | None],
                   failed: list[Piece], progress: Progress | None) -> str:
    """SHA-256 of the output as the pieces land, in order, skipping the ones that failed.

    Runs in the parent while the workers decrypt, so the digest costs no extra pass.
    """
    hasher = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)  # unbuffered: a read-ahead buffer would hold stale bytes
    try:
        for piece, error in zip(pieces, results, strict=True):
            if progress is not None:
                progress(1)
            if error is not None:
                failed.append(piece)
                continue
            done = 0
            while done < piece.length:
                block = os.pread(fd, min(piece.length - done, READ_BLOCK), piece.offset + done)
                if not block:
                    raise OSError(f"{path} is shorter than planned")
                hasher.update(block)
                done += len(block)
    finally:
        os.close(fd)
    return hasher.hexdigest()


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
                 identities: Sequence[Identity], path: Path, out: StreamOutput,
                 progress: Progress | None) -> None:
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
            finally:
                if progress is not None:
                    progress(1)
            entry = b"".join(parts).rstrip(b"\n") + b"\n"
            out.pieces.append(Piece(chunk.seq, dst.tell(), len(entry), chunk.age_file))
            dst.write(entry)
            hasher.update(entry)
        out.size, out.sha256 = dst.tell(), hasher.hexdigest()
    out.closed = bool(chunks) and chunks[-1].final is True and not out.failed


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
