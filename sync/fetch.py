"""`safehold fetch`: download everything the server holds (or released) for one encounter
into a bundle folder, resumably, in few requests, and bounded against a hostile server.

What is fetched is driven by the server's signed log, not by its listings (sync/fetching/plan.py):
the latest checkpoint is verified against the server key, the leaves are checked against its
root, and every chunk descriptor among them must be signed by a trusted device key and claim no
more than the server's chunk limit before any body is asked for. Receipts come by the page
(sync/fetching/receipts.py), bodies by the pack: a run of one stream's chunks per request, split
by the sizes their descriptors sign (sync/fetching/download.py). A chunk already in the bundle
with its digest is skipped; a partial one (`.age.part`) is continued with HTTP Range; nothing is
renamed into place before its digest matches. Consistency proofs from every receipt's checkpoint
to the latest are computed from the leaves (sync/fetching/proofs.py). The manifest is written
last, so a bundle with a manifest is complete for the checkpoint it names. A server that says
"too many requests" is waited out for as long as it asks (within bounds), and `on_wait` says so.

Who fetches is a `Reader`: the owner's device (state folder of `safehold device register`) or,
with the same endpoints once a recording is released, a trusted contact; each brings its own
login and the device keys it trusts.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.roster import Roster
from crypto.signing import key_fingerprint
from sync.api import ApiClient, RateWait
from sync.bundle.files import (
    AGE_SUFFIX,
    DESCRIPTOR_SUFFIX,
    RECEIPT_SUFFIX,
    BundleWriter,
    chunk_path,
)
from sync.errors import ServerRefusal, StateError
from sync.fetching.destination import fetch_destination_problem
from sync.fetching.download import Progress, Target, complete, download_pack, download_rest
from sync.fetching.plan import Plan, PlannedChunk, Reader, plan_fetch, trusted_server
from sync.fetching.proofs import consistency_proof
from sync.fetching.receipts import fetch_receipts
from sync.upload.outbox import now_rfc3339

__all__ = ["Plan", "Reader", "FetchResult", "fetch_encounter", "owner_reader", "contact_reader",
           "plan_fetch", "trusted_server"]
DEFAULT_DOWNLOADS = 4
OnWait = Callable[[float, ServerRefusal], None]  # seconds the server asked to wait, and why


@dataclass
class FetchResult:
    bundle: Path
    chunks: int
    downloaded: int  # chunks fetched now (the rest were already complete)
    bytes_downloaded: int
    tree_size: int
    refused: list[str] = field(default_factory=list)  # chunks not downloaded, and why


# ---------------------------------------------------------------- receipts and descriptors


def _names(chunk: PlannedChunk) -> tuple[str, str, str]:
    desc = chunk.desc
    return (chunk_path(desc.stream, desc.seq, AGE_SUFFIX),
            chunk_path(desc.stream, desc.seq, DESCRIPTOR_SUFFIX),
            chunk_path(desc.stream, desc.seq, RECEIPT_SUFFIX))


def _have_receipt(writer: BundleWriter, chunk: PlannedChunk) -> bool:
    _age, descriptor, receipt = _names(chunk)
    return writer.path_of(receipt).is_file() and writer.path_of(descriptor).is_file()


def _write_receipts(writer: BundleWriter, chunks: Sequence[PlannedChunk],
                    receipts: dict[int, dict[str, Any]]) -> None:
    for chunk in chunks:
        if chunk.index in receipts:
            _age, descriptor, receipt = _names(chunk)
            writer.write_bytes(descriptor, chunk.note.encode("utf-8"))
            writer.write_json(receipt, receipts[chunk.index])


def _tree_size_of(writer: BundleWriter, chunk: PlannedChunk) -> int:
    try:
        value = json.loads(writer.path_of(_names(chunk)[2]).read_text(encoding="utf-8"))
        size = value.get("tree_size") if isinstance(value, dict) else None
    except (OSError, ValueError):
        return 0
    return size if isinstance(size, int) and not isinstance(size, bool) else 0


# ---------------------------------------------------------------- bodies


@dataclass
class _Job:
    """One request's worth of downloading, and the receipts to write beside its chunks."""

    chunks: list[PlannedChunk]
    targets: list[Target]
    resume: bool  # a partial `.part` continued by Range (one chunk), else a pack


def _jobs(writer: BundleWriter, plan: Plan, todo: list[PlannedChunk]) -> list[_Job]:
    """Runs of consecutive seqs of one stream, within the pack limits; partial chunks alone."""
    jobs: list[_Job] = []
    run: _Job | None = None
    run_bytes = 0
    for chunk in sorted(todo, key=lambda c: (c.desc.stream, c.desc.seq)):
        target = Target(chunk.desc, writer.path_of(_names(chunk)[0]))
        if target.part.exists():
            jobs.append(_Job([chunk], [target], resume=True))
            continue
        if run is None or not _extends(run, run_bytes, chunk, plan):
            run = _Job([], [], resume=False)
            run_bytes = 0
            jobs.append(run)
        run.chunks.append(chunk)
        run.targets.append(target)
        run_bytes += chunk.desc.size
    return jobs


def _extends(run: _Job, run_bytes: int, chunk: PlannedChunk, plan: Plan) -> bool:
    """Whether `chunk` can join the pack `run`: the next seq of its stream, within the limits."""
    last = run.chunks[-1].desc
    return (last.stream == chunk.desc.stream and last.seq + 1 == chunk.desc.seq
            and len(run.chunks) < plan.limits.pack_chunks
            and run_bytes + chunk.desc.size <= plan.limits.pack_bytes)


def _run_job(reader: Reader, writer: BundleWriter, encounter_id: str, job: _Job,
             receipts: dict[int, dict[str, Any]], progress: Progress | None) -> int:
    _write_receipts(writer, job.chunks, receipts)
    if job.resume:
        return download_rest(reader.api, encounter_id, job.targets[0], progress)
    return download_pack(reader.api, encounter_id, job.targets, progress)


# ---------------------------------------------------------------- the whole encounter


def _check_destination(dest: Path, encounter_id: str) -> None:
    problem = fetch_destination_problem(dest, encounter_id)
    if problem is not None:
        raise StateError(problem)


def _consistency_proofs(plan: Plan, sizes: Sequence[int]) -> list[dict[str, Any]]:
    latest = plan.checkpoint.size
    return [{"first": size, "second": latest,
             "proof": [base64.b64encode(h).decode("ascii")
                       for h in consistency_proof(size, plan.tree)]}
            for size in sorted(set(sizes)) if 0 < size < latest]


def fetch_encounter(reader: Reader, encounter_id: str, dest: Path, *,
                    downloads: int = DEFAULT_DOWNLOADS, progress: Progress | None = None,
                    on_plan: Callable[[Plan], None] | None = None,
                    on_wait: OnWait | None = None) -> FetchResult:
    """Download the encounter into the bundle folder `dest` (resuming what is there)."""
    _check_destination(dest, encounter_id)
    if reader.api.rate_wait is None:
        reader.api.rate_wait = RateWait(on_wait or (lambda _seconds, _why: None))
    encounter = reader.api.encounter(encounter_id)
    plan = plan_fetch(reader, encounter_id)
    if on_plan is not None:
        on_plan(plan)
    writer = BundleWriter(dest)
    writer.begin_fetch(encounter_id)  # until the manifest: "incomplete download" to verify
    receipts = fetch_receipts(reader, plan, encounter_id,
                              [c for c in plan.planned if not _have_receipt(writer, c)])
    todo = []
    for chunk in plan.planned:
        if complete(writer.path_of(_names(chunk)[0]), chunk.desc):
            _write_receipts(writer, [chunk], receipts)
            if progress is not None:
                progress(chunk.desc.size)
        else:
            todo.append(chunk)
    jobs = _jobs(writer, plan, todo)
    with ThreadPoolExecutor(max_workers=max(1, downloads)) as pool:
        got = list(pool.map(lambda job: _run_job(reader, writer, encounter_id, job, receipts,
                                                 progress), jobs))
    if encounter.get("shared"):  # a one-encounter share's recipient: her re-wrapped headers
        from sync.fetching.grants import apply_grants

        apply_grants(reader, writer, encounter_id, plan)
    writer.write_leaves({"index": i, "data": base64.b64encode(leaf).decode("ascii")}
                        for i, leaf in enumerate(plan.leaves))
    writer.write_checkpoint(plan.checkpoint_note)
    writer.write_consistency(_consistency_proofs(plan, [_tree_size_of(writer, c)
                                                        for c in plan.planned]))
    writer.write_access(plan.access)
    writer.write_manifest(_manifest(reader, plan, encounter))
    writer.end_fetch()
    return FetchResult(dest, len(plan.planned), len(todo), sum(got), plan.checkpoint.size,
                       plan.refused)


def _manifest(reader: Reader, plan: Plan, encounter: dict[str, Any]) -> dict[str, Any]:
    return {
        "encounter_id": encounter["encounter_id"],
        "encounter": {k: encounter.get(k) for k in ("started_at", "created_at", "log_origin")},
        "server": {"url": reader.server_url, "name": plan.server_name,
                   "server_key": plan.server_key,
                   "fingerprint": key_fingerprint(plan.server_key)},
        "devices": [{"device_id": d["device_id"], "device_key": d["device_key"]}
                    for d in plan.devices],
        "roster": list(reader.roster_notes()),
        "log": {"tree_size": plan.checkpoint.size},
        "fetched_at": now_rfc3339(),
        "fetched_by": reader.who,
    }


def _roster_reader(api: ApiClient, server_url: str, server_key: str,
                   roster: Callable[[], Roster], who: dict[str, str]) -> Reader:
    verified = roster()  # checked now: a roster that does not verify stops fetch before it starts
    devices = [{"device_id": device_id, "device_key": key}
               for device_id, key in verified.device_ids().items()]
    return Reader(api, server_url, server_key, lambda: devices, who, lambda: verified.notes)


def owner_reader(api: ApiClient, server_url: str, server_key: str, device_id: str,
                 roster: Callable[[], Roster]) -> Reader:
    """The owner's device: trusts the server key pinned at registration and the devices of
    the account's roster, verified from the genesis this device pinned (sync/device/roster.py); a
    device the server lists outside the roster is trusted by nobody."""
    return _roster_reader(api, server_url, server_key, roster, {"kind": "device", "id": device_id})


def contact_reader(api: ApiClient, server_url: str, server_key: str, contact_id: str,
                   roster: Callable[[], Roster]) -> Reader:
    """A trusted contact: the same reads once released, its own login, the server key it
    pinned when it joined, and the owner's roster, which must begin with exactly the device
    keys the invitation proved (sync/device/roster.py contact_roster)."""
    return _roster_reader(api, server_url, server_key, roster,
                          {"kind": "contact", "id": contact_id})
