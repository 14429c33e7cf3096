"""`safehold verify`: prove, without any decryption key, that a bundle was not altered.

Order of the checks (each explained in docs/protocol.md, "Verifying a bundle"):
1. the manifest names the encounter, the server key and the device keys;
2. the latest checkpoint is signed by that server key and the leaf list hashes to its root;
3. every leaf that describes a chunk is signed by a listed device key;
4. every chunk in the bundle (in parallel): descriptor signature, size and SHA-256 of the age
   file, its slot stanza against where it lies, its receipt's checkpoint and inclusion proof,
   and that its descriptor is a leaf of the log;
5. every receipt's checkpoint is consistent with the latest (prefix roots and proofs);
6. every chunk the log holds is in the bundle; gaps and cut-off streams are named;
7. the access log file matches the access leaves of the log.
Errors mean alteration, forgery or inconsistency; warnings (gaps, cut-offs) do not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.checkpoint import Checkpoint
from sync.bundle.files import (
    ACCESS,
    CHECKPOINT,
    CHUNKS,
    CONSISTENCY,
    LEAVES,
    MANIFEST,
    BundleReader,
    ChunkEntry,
    chunk_path,
)
from sync.verifying.chunks import CheckpointCache, ChunkContext, ChunkOutcome, check_chunk
from sync.verifying.findings import (
    ERROR,
    WARNING,
    ChunkRecord,
    Problem,
    StreamSummary,
    Trust,
    seq_ranges,
)
from sync.verifying.log import (
    LogView,
    check_access_file,
    check_consistency,
    classify_leaves,
    load_log,
    load_trust,
)
from sync.workers import ordered_map

KNOWN_FILES = {MANIFEST, LEAVES, CHECKPOINT, CONSISTENCY, ACCESS}
Progress = Callable[[int], None]  # called with the number of chunks just checked


@dataclass
class Verification:
    """Everything `verify` established about a bundle; input of the decrypter and the report."""

    bundle: str
    trust: Trust | None = None
    checkpoint: Checkpoint | None = None
    chunks: list[ChunkRecord] = field(default_factory=list)
    streams: list[StreamSummary] = field(default_factory=list)
    access: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[str, tuple[str, int]] = field(default_factory=dict)  # file -> sha256, size
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        """Nothing was altered, forged or inconsistent (gaps and cut-offs may remain)."""
        return not self.errors


def verify_bundle(reader: BundleReader, workers: int | None = None,
                  progress: Progress | None = None) -> Verification:
    result, entries, strays = begin_verification(reader)
    if result.trust is None:
        return result
    ctx = (str(reader.path), result.trust)
    with ordered_map(_check_in_worker, entries, len(entries), workers, _init_worker,
                     ctx) as checked:
        view = load_log(reader, result.trust, result.problems)  # while the workers check
        outcomes = []
        for outcome in checked:
            outcomes.append(outcome)
            if progress is not None:
                progress(1)
    return conclude_verification(reader, result, view, outcomes, strays)


def begin_verification(reader: BundleReader) -> tuple[Verification, list[ChunkEntry], list[str]]:
    """The manifest's keys (result.trust, None if unusable) and the chunk places to check."""
    result = Verification(str(reader.path))
    result.trust = load_trust(reader, result.problems)
    entries, strays = reader.chunk_entries()
    return result, entries, strays


def conclude_verification(reader: BundleReader, result: Verification, view: LogView,
                          outcomes: list[ChunkOutcome], strays: list[str]) -> Verification:
    """Everything after the per-chunk checks: the chunks against the log, consistency, gaps."""
    assert result.trust is not None
    # A leaf that is byte for byte a descriptor already verified needs no second check.
    known = {o.note: o.descriptor for o in outcomes if o.note is not None and o.descriptor}
    classify_leaves(view, result.trust, known, result.problems)
    result.checkpoint, result.access = view.checkpoint, view.access
    for outcome in outcomes:
        outcome.settle(view.index_of if view.root_ok else None)
        result.chunks.append(outcome.record)
        result.problems.extend(outcome.problems)
        result.inputs.update(outcome.digests)
    check_consistency(reader, view, _receipt_roots(result.chunks), result.problems)
    notes = {(o.record.stream, o.record.seq): o.note for o in outcomes}
    _check_log_against_bundle(view, notes, result)
    check_access_file(reader, view, result.problems)
    result.streams = summarize_streams(view, result.chunks, result.problems)
    _hash_remaining_inputs(reader, result, strays)
    return result


_WORKER: dict[str, ChunkContext] = {}  # the context of a worker process


def _init_worker(path: str, trust: Trust) -> None:
    _WORKER["ctx"] = chunk_context(path, trust)


def chunk_context(path: str, trust: Trust) -> ChunkContext:
    """What a worker process needs to check chunks; it opens the bundle itself."""
    return ChunkContext(BundleReader(Path(path)), trust, CheckpointCache(trust.server_key))


def _check_in_worker(entry: ChunkEntry) -> ChunkOutcome:
    return check_chunk(_WORKER["ctx"], entry)


def _receipt_roots(chunks: list[ChunkRecord]) -> dict[int, set[bytes]]:
    roots: dict[int, set[bytes]] = defaultdict(set)
    for chunk in chunks:
        if chunk.tree_size is not None and chunk.receipt_root is not None:
            roots[chunk.tree_size].add(chunk.receipt_root)
    return dict(roots)


def _check_log_against_bundle(view: LogView, notes: dict[tuple[str, int], bytes | None],
                              result: Verification) -> None:
    """Every chunk the server logged must be in the bundle, intact; a chunk logged twice is a
    fork. Intact: the very descriptor the log holds, and an age file that passed its checks."""
    files = {(c.stream, c.seq) for c in result.chunks if c.age_file in result.inputs}
    bad = {p.file for p in result.errors if p.file and p.file.endswith(".age")}
    first_leaf: dict[tuple[str, int], int] = {}
    for index, desc in sorted(view.chunks.items()):
        place = (desc.stream, desc.seq)
        if place in first_leaf:
            other = view.chunks[first_leaf[place]]
            same = other == desc
            result.problems.append(Problem(
                WARNING if same else ERROR, "log_duplicate",
                f"{desc.stream} seq {desc.seq} is in the log twice (leaves {first_leaf[place]} "
                f"and {index})" + ("" if same else " with different contents"),
                stream=desc.stream, seq=desc.seq))
            continue
        first_leaf[place] = index
        path = chunk_path(desc.stream, desc.seq, ".age")
        if place not in files:
            result.problems.append(Problem(
                ERROR, "removed", f"{path} is not in the bundle, but the server's log holds "
                f"{desc.stream} seq {desc.seq} (leaf {index}): it was removed or withheld",
                path, desc.stream, desc.seq))
        elif notes.get(place) != view.leaves[index] or path in bad:
            result.problems.append(Problem(
                ERROR, "replaced", f"{path}: the bundle holds no intact copy of {desc.stream} "
                f"seq {desc.seq}, which the server's log holds (leaf {index})",
                path, desc.stream, desc.seq))


def summarize_streams(view: LogView, chunks: list[ChunkRecord],
                      problems: list[Problem]) -> list[StreamSummary]:
    """Per stream: which seqs the server logged, which never arrived, whether it was closed."""
    records = {(c.stream, c.seq): c for c in chunks}
    described: dict[str, dict[int, Any]] = defaultdict(dict)
    if view.chunks:
        for desc in view.chunks.values():
            described[desc.stream].setdefault(desc.seq, desc)
    else:  # no usable log: say what the bundle itself holds
        for c in chunks:
            if c.sound:
                described[c.stream][c.seq] = c
    return [_summarize(name, described[name], records, problems) for name in sorted(described)]


def _summarize(name: str, by_seq: dict[int, Any], records: dict[tuple[str, int], ChunkRecord],
               problems: list[Problem]) -> StreamSummary:
    summary = StreamSummary(name, sorted(by_seq))
    finals = [seq for seq, d in by_seq.items() if d.final]
    if len(finals) > 1:
        problems.append(Problem(ERROR, "two_finals", f"{name} has more than one final chunk "
                                f"(seqs {seq_ranges(finals)})", stream=name))
    summary.final_seq = min(finals) if finals else None
    beyond = [s for s in summary.seqs if summary.final_seq is not None and s > summary.final_seq]
    if beyond:
        problems.append(Problem(ERROR, "after_final", f"{name} has chunks after its final chunk "
                                f"{summary.final_seq}: seqs {seq_ranges(beyond)}", stream=name))
    end = summary.final_seq if summary.final_seq is not None else summary.seqs[-1]
    summary.missing = sorted(set(range(end + 1)) - set(summary.seqs))
    if summary.missing:
        problems.append(Problem(WARNING, "missing_seq", f"{name}: seq {seq_ranges(summary.missing)}"
                                " never reached the server (not in its log)", stream=name))
    summary.last_seq = summary.seqs[-1]
    last = by_seq[summary.last_seq]
    summary.last_device_time = last.device_time
    record = records.get((name, summary.last_seq))
    summary.last_received_at = record.received_at if record else None
    if summary.cut_off:
        received = summary.last_received_at or "at an unknown time"
        problems.append(Problem(WARNING, "cut_off", f"{name} was cut off: no final chunk; the "
                                f"last is seq {summary.last_seq}, signed {summary.last_device_time}"
                                f" (device clock), received {received} (server)",
                                stream=name, seq=summary.last_seq))
    return summary


def _hash_remaining_inputs(reader: BundleReader, result: Verification, strays: list[str]) -> None:
    for name in reader.names():
        if name not in result.inputs:
            result.inputs[name] = reader.digest(name)
        if name not in KNOWN_FILES and not name.startswith(CHUNKS + "/"):
            strays.append(name)
    for name in strays:
        result.problems.append(Problem(WARNING, "stray_file", f"{name} is not part of the bundle "
                                       "format (not checked)", name))
