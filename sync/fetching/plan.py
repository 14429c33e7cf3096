"""What there is to fetch, from the server's signed log: checked, and bounded, before any chunk
body is asked for.

The latest checkpoint is verified against the (pinned) server key and must not claim more
leaves than a fetch handles; the leaves come by the page, each page and leaf bounded, and must
hash to the signed root. Every chunk descriptor among them must be signed by a device key the
reader trusts, be for this encounter and claim no more bytes than the server's chunk limit: a
chunk that fails is not downloaded at all, and the fetch names it (`Plan.refused`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crypto.access import TYPE_TAG as ACCESS_TAG
from crypto.checkpoint import Checkpoint, encounter_origin, open_checkpoint
from crypto.descriptor import TYPE_TAG as CHUNK_TAG
from crypto.descriptor import ChunkDescriptor, open_descriptor
from crypto.errors import CryptoError
from crypto.merkle import EMPTY_ROOT, leaf_hash
from crypto.signing import key_fingerprint, split_note
from sync.api import ApiClient, server_name_of
from sync.errors import OverLimit, UntrustedServer
from sync.fetching.limits import (
    MAX_LEAF_BYTES,
    MAX_LOG_BYTES,
    MAX_LOG_SIZE,
    MAX_NOTE_CHARS,
    Limits,
    limits_of,
)
from sync.fetching.proofs import SubtreeRoots


@dataclass
class Reader:
    """Someone allowed to read an encounter: a logged-in client and what they trust."""

    api: ApiClient
    server_url: str
    pinned_server_key: str | None  # pinned at registration or join; None: trust on first use
    device_keys: Callable[[], list[dict[str, str]]]  # the recording account's device keys
    who: dict[str, str]  # {"kind": "device" | "contact", "id": ...}, recorded in the manifest
    # The account's verified device roster (device/roster.py), carried in the manifest so verify
    # checks the chain; device_keys are exactly its devices.
    roster_notes: Callable[[], Sequence[str]] = lambda: []


@dataclass(frozen=True)
class PlannedChunk:
    index: int  # its leaf in the log
    desc: ChunkDescriptor
    note: str  # the signed descriptor note (the leaf's text)


@dataclass
class Plan:
    """What the server's log says there is to fetch."""

    server_name: str
    server_key: str
    limits: Limits
    devices: list[dict[str, str]]
    checkpoint_note: str
    checkpoint: Checkpoint
    leaves: list[bytes]
    tree: SubtreeRoots  # over the leaves' hashes: the root, and proofs from older sizes
    planned: list[PlannedChunk] = field(default_factory=list)
    access: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # chunks not downloaded, and why

    @property
    def chunks(self) -> list[ChunkDescriptor]:
        return [p.desc for p in self.planned]


def trusted_server(reader: Reader) -> tuple[str, str]:
    """The server's name and key; the name must match the URL, the key the pinned one."""
    name, key, _limits = trusted_server_and_limits(reader)
    return name, key


def trusted_server_and_limits(reader: Reader) -> tuple[str, str, Limits]:
    """`trusted_server`, and the limits the server advertises (held to the client's caps)."""
    info = reader.api.server_info()
    name, key = str(info.get("name")), str(info.get("server_key"))
    if name != server_name_of(reader.server_url):
        raise UntrustedServer(f"the server at {reader.server_url} calls itself {name[:80]!r}; "
                              "its checkpoints would not match this address")
    if reader.pinned_server_key is not None and key != reader.pinned_server_key:
        raise UntrustedServer(
            f"the server's key changed: it now presents fingerprint {_fingerprint(key)}, "
            f"but {key_fingerprint(reader.pinned_server_key)} was pinned; nothing was fetched")
    return name, key, limits_of(info)


def _fingerprint(key: str) -> str:
    try:
        return key_fingerprint(key)
    except CryptoError:
        return "(not a valid key)"


def latest_checkpoint(reader: Reader, encounter_id: str, name: str,
                      key: str) -> tuple[str, Checkpoint]:
    note = reader.api.latest_checkpoint(encounter_id).get("checkpoint")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise UntrustedServer(f"the server's checkpoint for {encounter_id} is not a note of at "
                              f"most {MAX_NOTE_CHARS} characters")
    try:
        checkpoint = open_checkpoint(note, key,
                                     expected_origin=encounter_origin(name, encounter_id))
    except CryptoError as exc:
        raise UntrustedServer(f"the server's checkpoint for {encounter_id} does not verify: {exc}")
    if checkpoint.size > MAX_LOG_SIZE:
        raise OverLimit(f"the server's checkpoint for {encounter_id} claims {checkpoint.size} "
                        f"log leaves; a fetch handles at most {MAX_LOG_SIZE} (a broken or hostile "
                        "server?); nothing was downloaded")
    return note, checkpoint


def fetch_leaves(reader: Reader, encounter_id: str, size: int, per_page: int) -> list[bytes]:
    """Leaves [0, size), page by page; each page must be the next ones, in order, bounded."""
    leaves: list[bytes] = []
    held = 0
    while len(leaves) < size:
        start = len(leaves)
        end = min(start + per_page, size)
        page = reader.api.leaves(encounter_id, start, end)
        if not page or len(page) > end - start:
            raise UntrustedServer(f"the server sent {len(page)} leaves of {encounter_id} when "
                                  f"asked for leaves {start} to {end - 1}")
        for offset, item in enumerate(page):
            leaf = _leaf_of(item, start + offset, encounter_id)
            held += len(leaf)
            if held > MAX_LOG_BYTES:
                raise OverLimit(f"the log of {encounter_id} holds more than {MAX_LOG_BYTES} bytes "
                                "of leaves; a fetch holds no more (a broken or hostile server?)")
            leaves.append(leaf)
    return leaves


def _leaf_of(item: Any, index: int, encounter_id: str) -> bytes:
    try:
        if item["index"] != index or len(item["data"]) > MAX_LEAF_BYTES * 4 // 3 + 4:
            raise ValueError("out of order or too long")
        return base64.b64decode(item["data"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise UntrustedServer(f"the server sent leaf {index} of {encounter_id} out of order or "
                              f"malformed ({exc}); leaves are at most {MAX_LEAF_BYTES} bytes")


def plan_fetch(reader: Reader, encounter_id: str) -> Plan:
    """The latest checkpoint (verified) and every leaf under it (checked against its root)."""
    name, key, limits = trusted_server_and_limits(reader)
    note, checkpoint = latest_checkpoint(reader, encounter_id, name, key)
    leaves = fetch_leaves(reader, encounter_id, checkpoint.size, limits.leaves_per_page)
    tree = SubtreeRoots([leaf_hash(leaf) for leaf in leaves])
    if (tree.root(0, len(leaves)) if leaves else EMPTY_ROOT) != checkpoint.root:
        raise UntrustedServer(f"the server's leaves for {encounter_id} do not hash to its own "
                              "signed checkpoint")
    plan = Plan(name, key, limits, reader.device_keys(), note, checkpoint, leaves, tree)
    trusted = [d["device_key"] for d in plan.devices]
    taken: set[tuple[str, int]] = set()
    for index, leaf in enumerate(leaves):
        _classify(plan, encounter_id, trusted, taken, index, leaf)
    return plan


def _classify(plan: Plan, encounter_id: str, trusted: list[str], taken: set[tuple[str, int]],
              index: int, leaf: bytes) -> None:
    """Chunk leaves are planned for download once checked; access leaves are listed."""
    try:
        text = leaf.decode("utf-8")
        body, _signatures = split_note(text)
    except (UnicodeDecodeError, CryptoError):
        return  # verify names it; fetch only needs to know what to download
    kind = body.split("\n", 1)[0]
    if kind == CHUNK_TAG:
        _plan_chunk(plan, encounter_id, trusted, taken, index, text)
    elif kind == ACCESS_TAG:
        fields = dict(line.split(" ", 1) for line in body.rstrip("\n").split("\n")[1:]
                      if " " in line)
        plan.access.append({"index": index, **fields})


def _signer_names(note: str) -> str:
    """Who the note says signed it (unverified names, escaped later for the terminal)."""
    names = [sig.name for sig in split_note(note)[1]]
    return ", ".join(names[:3]) if names else "nobody"


def _plan_chunk(plan: Plan, encounter_id: str, trusted: list[str], taken: set[tuple[str, int]],
                index: int, note: str) -> None:
    try:
        desc, _signers = open_descriptor(note, trusted)
    except CryptoError as exc:
        plan.refused.append(f"FORGED: log leaf {index} is a chunk descriptor signed by "
                            f"{_signer_names(note)}, no device of the account's roster "
                            f"({exc}); its chunk was not downloaded")
        return
    where = f"{desc.stream} seq {desc.seq} (log leaf {index})"
    if desc.encounter != encounter_id:
        plan.refused.append(f"{where} is a chunk of another encounter; not downloaded")
    elif desc.size > plan.limits.max_chunk_bytes:
        plan.refused.append(f"{where}: its descriptor claims {desc.size} bytes, more than the "
                            f"server's chunk limit of {plan.limits.max_chunk_bytes}; not "
                            "downloaded")
    elif (desc.stream, desc.seq) in taken:
        plan.refused.append(f"{where}: the log holds a second descriptor for this slot; only "
                            "the first was downloaded")
    else:
        taken.add((desc.stream, desc.seq))
        plan.planned.append(PlannedChunk(index, desc, note))
