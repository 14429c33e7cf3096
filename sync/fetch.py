"""`safehold fetch`: download everything the server holds (or released) for one encounter
into a bundle folder, resumably and several downloads at once.

What is fetched is driven by the server's signed log, not by its listings: the latest
checkpoint is verified against the server key, the leaves are checked against its root, and
every chunk leaf names (in its device-signed descriptor) the size and SHA-256 of the age file to
download. A chunk already in the bundle with that digest is skipped; a partial download
(`.age.part`) is continued with an HTTP Range request; nothing is renamed into place before its
digest matches. The manifest is written last, so a bundle with a manifest is complete for the
checkpoint it names. Run `safehold verify` (fetch does) to check everything offline.

Who fetches is a `Reader`: the owner's device (state folder of `safehold device register`) or,
with the same endpoints once a recording is released, a trusted contact; each brings its own
login and the device keys it trusts.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.access import TYPE_TAG as ACCESS_TAG
from crypto.checkpoint import Checkpoint, encounter_origin, open_checkpoint
from crypto.descriptor import TYPE_TAG as CHUNK_TAG
from crypto.descriptor import ChunkDescriptor
from crypto.errors import CryptoError
from crypto.merkle import leaf_hash, root_hash
from crypto.roster import Roster
from crypto.signing import key_fingerprint, split_note
from sync.api import ApiClient, server_name_of
from sync.bundle import (
    AGE_SUFFIX,
    DESCRIPTOR_SUFFIX,
    MANIFEST,
    RECEIPT_SUFFIX,
    BundleWriter,
    chunk_path,
    file_digest,
)
from sync.errors import StateError, UntrustedServer
from sync.outbox import now_rfc3339

LEAVES_PAGE = 1000  # the server's page size for /log/leaves
RANGE_BYTES = 1 << 20  # download in ranges: an interrupted chunk resumes at a 1 MiB boundary
DEFAULT_DOWNLOADS = 4
Progress = Callable[[int], None]  # called with bytes just written


@dataclass
class Reader:
    """Someone allowed to read an encounter: a logged-in client and what they trust."""

    api: ApiClient
    server_url: str
    pinned_server_key: str | None  # pinned at registration or join; None: trust on first use
    device_keys: Callable[[], list[dict[str, str]]]  # the recording account's device keys
    who: dict[str, str]  # {"kind": "device" | "contact", "id": ...}, recorded in the manifest
    # The account's verified device roster (sync/roster.py), carried in the manifest so verify
    # checks the chain; device_keys are exactly its devices.
    roster_notes: Callable[[], Sequence[str]] = lambda: []


@dataclass
class Plan:
    """What the server's log says there is to fetch."""

    server_name: str
    server_key: str
    checkpoint_note: str
    checkpoint: Checkpoint
    leaves: list[bytes]
    chunks: list[ChunkDescriptor] = field(default_factory=list)
    access: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FetchResult:
    bundle: Path
    chunks: int
    downloaded: int  # chunks fetched now (the rest were already complete)
    bytes_downloaded: int
    tree_size: int


def trusted_server(reader: Reader) -> tuple[str, str]:
    """The server's name and key; the name must match the URL, the key the pinned one."""
    info = reader.api.server_info()
    name, key = str(info.get("name")), str(info.get("server_key"))
    if name != server_name_of(reader.server_url):
        raise UntrustedServer(f"the server at {reader.server_url} calls itself {name!r}; its "
                              "checkpoints would not match this address")
    if reader.pinned_server_key is not None and key != reader.pinned_server_key:
        raise UntrustedServer(
            f"the server's key changed: it now presents fingerprint {key_fingerprint(key)}, "
            f"but {key_fingerprint(reader.pinned_server_key)} was pinned; nothing was fetched")
    return name, key


def plan_fetch(reader: Reader, encounter_id: str) -> Plan:
    """The latest checkpoint (verified) and every leaf under it (checked against its root)."""
    name, key = trusted_server(reader)
    note = str(reader.api.latest_checkpoint(encounter_id)["checkpoint"])
    try:
        checkpoint = open_checkpoint(note, key,
                                     expected_origin=encounter_origin(name, encounter_id))
    except CryptoError as exc:
        raise UntrustedServer(f"the server's checkpoint for {encounter_id} does not verify: {exc}")
    leaves: list[bytes] = []
    while len(leaves) < checkpoint.size:
        end = min(len(leaves) + LEAVES_PAGE, checkpoint.size)
        page = reader.api.leaves(encounter_id, len(leaves), end)
        indices = [p["index"] for p in page]
        if not page or indices != list(range(len(leaves), len(leaves) + len(page))):
            raise UntrustedServer(f"the server sent leaves out of order for {encounter_id}")
        leaves += [base64.b64decode(p["data"], validate=True) for p in page]
    if root_hash([leaf_hash(leaf) for leaf in leaves]) != checkpoint.root:
        raise UntrustedServer(f"the server's leaves for {encounter_id} do not hash to its own "
                              "signed checkpoint")
    plan = Plan(name, key, note, checkpoint, leaves)
    for index, leaf in enumerate(leaves):
        _classify(plan, index, leaf)
    return plan


def _classify(plan: Plan, index: int, leaf: bytes) -> None:
    """Note which leaves are chunks (to download) and which are reads (the access log)."""
    try:
        text, _signatures = split_note(leaf.decode("utf-8"))
    except (UnicodeDecodeError, CryptoError):
        return  # verify names it; fetch only needs to know what to download
    kind = text.split("\n", 1)[0]
    if kind == CHUNK_TAG:
        try:
            plan.chunks.append(ChunkDescriptor.parse(text))
        except CryptoError:
            return
    elif kind == ACCESS_TAG:
        fields = dict(line.split(" ", 1) for line in text.rstrip("\n").split("\n")[1:]
                      if " " in line)
        plan.access.append({"index": index, **fields})


# ---------------------------------------------------------------- downloading


def _complete(path: Path, desc: ChunkDescriptor) -> bool:
    if not path.is_file() or path.stat().st_size != desc.size:
        return False
    with open(path, "rb") as stream:
        return file_digest(stream)[0] == desc.sha256


def _download_age(reader: Reader, desc: ChunkDescriptor, target: Path,
                  progress: Progress | None) -> int:
    """The age file into `target` via `<target>.part`, continuing a partial one; bytes got."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > desc.size:
        part.unlink()
        have = 0
    got = 0
    with open(part, "ab") as out:
        while have < desc.size:
            last = min(have + RANGE_BYTES, desc.size) - 1
            body = reader.api.request(
                "GET", _chunk_url(desc), auth=True, headers={"Range": f"bytes={have}-{last}"}
            ).content
            if not body or len(body) > last - have + 1:
                raise UntrustedServer(f"the server answered a range of {desc.stream} seq "
                                      f"{desc.seq} with {len(body)} bytes")
            out.write(body)
            out.flush()
            have += len(body)
            got += len(body)
            if progress is not None:
                progress(len(body))
    if not _complete(part, desc):
        part.unlink()
        raise UntrustedServer(f"{desc.stream} seq {desc.seq} as served does not match the "
                              "SHA-256 in its signed descriptor; run fetch again")
    os.replace(part, target)
    return got


def _chunk_url(desc: ChunkDescriptor) -> str:
    return f"/v1/encounters/{desc.encounter}/streams/{desc.stream}/chunks/{desc.seq}"


def fetch_chunk(reader: Reader, writer: BundleWriter, desc: ChunkDescriptor,
                progress: Progress | None) -> tuple[int, dict[str, Any]]:
    """(bytes downloaded, receipt) for one chunk; skips what is already complete."""
    age_path = writer.path_of(chunk_path(desc.stream, desc.seq, AGE_SUFFIX))
    receipt_name = chunk_path(desc.stream, desc.seq, RECEIPT_SUFFIX)
    descriptor_name = chunk_path(desc.stream, desc.seq, DESCRIPTOR_SUFFIX)
    if writer.path_of(receipt_name).is_file() and writer.path_of(descriptor_name).is_file():
        receipt = _read_json(writer.path_of(receipt_name))
    else:
        answer = reader.api.chunk_receipt(desc.encounter, desc.stream, desc.seq)
        note = str(answer.pop("descriptor"))
        writer.write_bytes(descriptor_name, note.encode("utf-8"))
        receipt = {k: v for k, v in answer.items() if k != "created"}
        writer.write_json(receipt_name, receipt)
    if _complete(age_path, desc):
        if progress is not None:
            progress(desc.size)
        return 0, receipt
    age_path.parent.mkdir(parents=True, exist_ok=True)
    return _download_age(reader, desc, age_path, progress), receipt


def _read_json(path: Path) -> dict[str, Any]:
    import json

    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------- the whole encounter


def _check_destination(dest: Path, encounter_id: str) -> None:
    manifest = dest / MANIFEST
    if manifest.is_file():
        found = _read_json(manifest).get("encounter_id")
        if found != encounter_id:
            raise StateError(f"{dest} holds a bundle of encounter {found}, not {encounter_id}; "
                             "choose another folder")
    elif dest.exists() and not dest.is_dir():
        raise StateError(f"{dest} exists and is not a folder")


def _consistency_proofs(reader: Reader, encounter_id: str, sizes: Sequence[int],
                        latest: int) -> list[dict[str, Any]]:
    proofs = []
    for size in sorted(set(sizes)):
        if 0 < size < latest:
            proof = reader.api.consistency(encounter_id, size, latest)
            proofs.append({"first": size, "second": latest,
                           "proof": [base64.b64encode(p).decode("ascii") for p in proof]})
    return proofs


def fetch_encounter(reader: Reader, encounter_id: str, dest: Path, *,
                    downloads: int = DEFAULT_DOWNLOADS, progress: Progress | None = None,
                    on_plan: Callable[[Plan], None] | None = None) -> FetchResult:
    """Download the encounter into the bundle folder `dest` (resuming what is there)."""
    _check_destination(dest, encounter_id)
    encounter = reader.api.encounter(encounter_id)
    plan = plan_fetch(reader, encounter_id)
    if on_plan is not None:
        on_plan(plan)
    writer = BundleWriter(dest)
    with ThreadPoolExecutor(max_workers=max(1, downloads)) as pool:
        results = list(pool.map(lambda d: fetch_chunk(reader, writer, d, progress), plan.chunks))
    sizes = [int(receipt.get("tree_size", 0)) for _got, receipt in results]
    writer.write_leaves({"index": i, "data": base64.b64encode(leaf).decode("ascii")}
                        for i, leaf in enumerate(plan.leaves))
    writer.write_checkpoint(plan.checkpoint_note)
    writer.write_consistency(_consistency_proofs(reader, encounter_id, sizes,
                                                 plan.checkpoint.size))
    writer.write_access(plan.access)
    writer.write_manifest(_manifest(reader, plan, encounter))
    return FetchResult(dest, len(plan.chunks), sum(1 for got, _ in results if got),
                       sum(got for got, _ in results), plan.checkpoint.size)


def _manifest(reader: Reader, plan: Plan, encounter: dict[str, Any]) -> dict[str, Any]:
    return {
        "encounter_id": encounter["encounter_id"],
        "encounter": {k: encounter.get(k) for k in ("started_at", "created_at", "log_origin")},
        "server": {"url": reader.server_url, "name": plan.server_name,
                   "server_key": plan.server_key,
                   "fingerprint": key_fingerprint(plan.server_key)},
        "devices": [{"device_id": d["device_id"], "device_key": d["device_key"]}
                    for d in reader.device_keys()],
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
    the account's roster, verified from the genesis this device pinned (sync/roster.py); a
    device the server lists outside the roster is trusted by nobody."""
    return _roster_reader(api, server_url, server_key, roster, {"kind": "device", "id": device_id})


def contact_reader(api: ApiClient, server_url: str, server_key: str, contact_id: str,
                   roster: Callable[[], Roster]) -> Reader:
    """A trusted contact: the same reads once released, its own login, the server key it
    pinned when it joined, and the owner's roster, which must begin with exactly the device
    keys the invitation proved (sync/roster.py contact_roster)."""
    return _roster_reader(api, server_url, server_key, roster,
                          {"kind": "contact", "id": contact_id})
