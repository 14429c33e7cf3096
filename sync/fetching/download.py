"""Chunk bodies into the bundle: runs of a stream by the pack, a partial chunk by HTTP Range.

Every byte goes to `<chunk>.age.part` first and is renamed into place only when the chunk's
size and SHA-256 match its signed descriptor. No more than the descriptors' sizes is ever
written: the request is made with that bound (sync/api.py), and a server that sends more is cut
off there and reported (OverLimit, exit 1). A download cut short leaves the `.part` of the chunk
it was in, which the next fetch continues with a Range request.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from crypto.descriptor import ChunkDescriptor
from sync.api import ApiClient
from sync.bundle.files import file_digest
from sync.errors import OverLimit, UntrustedServer

RANGE_BYTES = 1 << 20  # a partial chunk continues in ranges of 1 MiB
Progress = Callable[[int], None]  # called with bytes just written


@dataclass(frozen=True)
class Target:
    desc: ChunkDescriptor
    path: Path  # where the finished age file goes

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + ".part")


def complete(path: Path, desc: ChunkDescriptor) -> bool:
    if not path.is_file() or path.stat().st_size != desc.size:
        return False
    with open(path, "rb") as stream:
        return file_digest(stream)[0] == desc.sha256


def _mismatch(desc: ChunkDescriptor) -> UntrustedServer:
    return UntrustedServer(f"{desc.stream} seq {desc.seq} as served does not match the SHA-256 "
                           "in its signed descriptor; run fetch again")


class _PartFile:
    """One chunk's `.part`, hashed as it is written; `finish` checks and renames it."""

    def __init__(self, target: Target, keep: bool) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.have = 0
        # A `.part` longer than the chunk is not ours to continue (an older fetch, or junk).
        keep = keep and target.part.exists() and target.part.stat().st_size <= target.desc.size
        if keep:
            with open(target.part, "rb") as done:
                while block := done.read(RANGE_BYTES):
                    self.hash.update(block)
                    self.have += len(block)
        # Closed by finish() or by whoever stops writing (PackSplitter.close, download_rest).
        self.out: IO[bytes] = open(target.part, "ab" if keep else "wb")  # noqa: SIM115

    @property
    def missing(self) -> int:
        return self.target.desc.size - self.have

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.hash.update(data)
        self.have += len(data)

    def finish(self) -> None:
        self.out.close()
        desc = self.target.desc
        if self.have != desc.size or self.hash.hexdigest() != desc.sha256:
            self.target.part.unlink()
            raise _mismatch(desc)
        os.replace(self.target.part, self.target.path)


class PackSplitter:
    """Takes a pack's bytes in order and cuts them into its chunks by their descriptors' sizes."""

    def __init__(self, targets: list[Target], progress: Progress | None) -> None:
        self.waiting = list(reversed(targets))
        self.current: _PartFile | None = None
        self.progress = progress
        self.got = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.current is None:
                if not self.waiting:
                    raise OverLimit("the server sent more bytes than the pack's chunks hold")
                self.current = _PartFile(self.waiting.pop(), keep=False)
                if not self.current.missing:
                    self._next()
                    continue
            piece = view[:self.current.missing]
            self.current.write(bytes(piece))
            self.got += len(piece)
            view = view[len(piece):]
            if self.progress is not None:
                self.progress(len(piece))
            if not self.current.missing:
                self._next()

    def _next(self) -> None:
        assert self.current is not None
        self.current.finish()
        self.current = None

    def close(self) -> None:
        """Keep a chunk cut off part-way as its `.part` (the next fetch continues it)."""
        if self.current is not None:
            self.current.out.close()

    def finish(self, what: str) -> None:
        while self.waiting and self.current is None and not self.waiting[-1].desc.size:
            self.current = _PartFile(self.waiting.pop(), keep=False)
            self._next()
        if self.current is not None or self.waiting:
            self.close()
            raise UntrustedServer(f"the server's pack of {what} ended after {self.got} bytes, "
                                  "short of the sizes its descriptors sign; run fetch again")


def download_pack(api: ApiClient, encounter_id: str, targets: list[Target],
                  progress: Progress | None) -> int:
    """Seqs of one stream, consecutive, in one request; the bytes written."""
    first, last = targets[0].desc, targets[-1].desc
    splitter = PackSplitter(targets, progress)
    try:
        api.chunk_pack(encounter_id, first.stream, first.seq, last.seq + 1, splitter.write,
                       sum(t.desc.size for t in targets))
    except BaseException:
        splitter.close()
        raise
    splitter.finish(f"{first.stream} seqs {first.seq}-{last.seq}")
    return splitter.got


def download_rest(api: ApiClient, encounter_id: str, target: Target,
                  progress: Progress | None) -> int:
    """Continue a chunk's `.part` with Range requests; the bytes written now."""
    desc = target.desc
    part = _PartFile(target, keep=True)
    got = 0
    try:
        while part.missing > 0:
            before, length = part.have, min(RANGE_BYTES, part.missing)
            api.chunk_range(encounter_id, desc.stream, desc.seq, part.have, length, part.write)
            if part.have - before != length:  # the server knows the size: short is a lie
                raise UntrustedServer(f"the server answered a range of {length} bytes of "
                                      f"{desc.stream} seq {desc.seq} with {part.have - before}")
            got += part.have - before
            if progress is not None:
                progress(part.have - before)
    finally:
        part.out.close()
    part.finish()
    return got
