"""Checks of a bundle as a whole: its manifest, the server's log of the encounter, the
consistency of every checkpoint the server signed, and the access log.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crypto.access import open_access
from crypto.checkpoint import Checkpoint, open_checkpoint
from crypto.descriptor import ChunkDescriptor
from crypto.errors import BadProof, CryptoError, MalformedError
from crypto.merkle import leaf_hash, node_hash, root_hash, verify_consistency
from crypto.signing import key_fingerprint, key_name
from crypto.slot import check_encounter
from sync.bundle.files import (
    ACCESS,
    CHECKPOINT,
    CONSISTENCY,
    FORMAT,
    LEAVES,
    MANIFEST,
    BundleReader,
)
from sync.bundle.manifest_info import manifest_info
from sync.safetext import safe_text
from sync.verifying.chunks import open_device_descriptor
from sync.verifying.findings import ERROR, WARNING, Problem, Trust
from sync.verifying.roster import ROSTER_FIELD, forged_message, load_roster, trusted_devices

CHUNK_KIND = "safehold.chunk/v1"
ACCESS_KIND = "safehold.access/v1"


def _error(problems: list[Problem], check: str, file: str | None, message: str) -> None:
    problems.append(Problem(ERROR, check, message, file))


# ---------------------------------------------------------------- manifest


def load_trust(reader: BundleReader, problems: list[Problem]) -> Trust | None:
    """The keys and names the manifest states; None if the manifest is unusable."""
    try:
        manifest = reader.read_json(MANIFEST)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        _error(problems, "manifest", MANIFEST, f"{MANIFEST} is not valid JSON ({exc})")
        return None
    if manifest.get("format") != FORMAT:
        _error(problems, "manifest", MANIFEST, f"{MANIFEST} is not a {FORMAT} manifest")
        return None
    try:
        encounter = check_encounter(manifest.get("encounter_id"))
    except MalformedError as exc:
        _error(problems, "manifest", MANIFEST, f"{MANIFEST}: {exc}")
        return None
    server = manifest.get("server")
    if not isinstance(server, dict):
        server = {}
    name, url = str(server.get("name", "")), str(server.get("url", ""))
    server_key, fingerprint = _server_key(server.get("server_key"), name, problems)
    devices, prints = _device_keys(manifest.get("devices"), problems)
    roster = load_roster(manifest.get(ROSTER_FIELD), name, problems)
    devices, prints = trusted_devices(roster, devices, prints, problems)
    trust = Trust(encounter, name, url, server_key, fingerprint, devices, prints,
                  roster.genesis_hash if roster is not None else None)
    for field_name in manifest_info(manifest, trust.origin)[1]:
        problems.append(Problem(WARNING, "manifest_info", f"{MANIFEST}: {field_name} is not "
                                "well-formed; the report leaves it out", MANIFEST))
    return trust


def _server_key(key: Any, name: str, problems: list[Problem]) -> tuple[str | None, str | None]:
    try:
        if not isinstance(key, str):
            raise MalformedError("absent")
        fingerprint, named = key_fingerprint(key), key_name(key)
    except MalformedError as exc:
        _error(problems, "server_key", MANIFEST, f"{MANIFEST}: the server key is not a valid "
               f"verifier key ({exc}); no checkpoint can be checked")
        return None, None
    if named != name:
        _error(problems, "server_key", MANIFEST, f"{MANIFEST}: the server key is named "
               f"{named!r} but the server is {name!r}")
    return key, fingerprint


def _device_keys(devices: Any, problems: list[Problem]) -> tuple[dict[str, str], dict[str, str]]:
    """The manifest's device keys, each under the id its key names (`device-<device id>`).

    The manifest is not signed, so the id it states beside a key is only believed when it is
    the key's own: the key's name is hashed into its key id and stands in every descriptor's
    signature line the server logged. Any other name for a key ("Officer Smith's phone") is
    an error, and a free-text label is ignored (docs/protocol.md §4.2)."""
    keys: dict[str, str] = {}
    prints: dict[str, str] = {}
    for device in devices if isinstance(devices, list) else []:
        stated = device.get("device_id") if isinstance(device, dict) else None
        key = device.get("device_key") if isinstance(device, dict) else None
        try:
            if not isinstance(key, str):
                raise MalformedError("absent")
            fingerprint, named = key_fingerprint(key), key_name(key)
        except MalformedError as exc:
            _error(problems, "device_key", MANIFEST, f"{MANIFEST}: the key of device "
                   f"{safe_text(str(stated))} is not a valid verifier key ({exc})")
            continue
        device_id = _device_id_of(named, stated, fingerprint, problems)
        if keys.get(device_id, key) != key:
            _error(problems, "device_label", MANIFEST, f"{MANIFEST}: two different keys are "
                   f"named device-{device_id}")
            continue
        keys[device_id], prints[device_id] = key, fingerprint
        _unverified_labels(device, device_id, problems)
    if not keys:
        _error(problems, "device_key", MANIFEST, f"{MANIFEST} lists no usable device key, so "
               "no descriptor can be checked")
    return keys, prints


def _device_id_of(named: str, stated: Any, fingerprint: str, problems: list[Problem]) -> str:
    """The device id a key names; an error if it is not a UUID or not the manifest's."""
    device_id = named.removeprefix("device-")
    try:
        check_encounter(device_id)  # a device id is a lowercase UUID, like an encounter id
        if named != f"device-{device_id}":
            raise MalformedError("no device- prefix")
    except MalformedError:
        _error(problems, "device_label", MANIFEST, f"{MANIFEST}: the device key with "
               f"fingerprint {fingerprint} is named {named!r}, not device-<device id>: it is "
               "not a Safehold device key")
        return device_id
    if stated != device_id:
        shown = safe_text(stated) if isinstance(stated, str) else repr(stated)
        _error(problems, "device_label", MANIFEST, f"{MANIFEST} calls the device key with "
               f"fingerprint {fingerprint} '{shown}', but the key names itself "
               f"device-{device_id}: the name in the manifest is not tied to the key")
    return device_id


def _unverified_labels(device: dict[str, Any], device_id: str,
                       problems: list[Problem]) -> None:
    for field_name in ("label", "name"):
        label = device.get(field_name)
        if label is not None:
            shown = safe_text(label) if isinstance(label, str) else repr(label)
            problems.append(Problem(WARNING, "unverified_label", f"{MANIFEST}: device "
                                    f"{device_id} carries the {field_name} '{shown}', which no "
                                    "key signed; it is not shown as the device's name", MANIFEST))


# ---------------------------------------------------------------- the log


@dataclass
class LogView:
    """The server's log of the encounter as the bundle holds it, and what it says."""

    checkpoint: Checkpoint | None = None
    leaves: list[bytes] = field(default_factory=list)
    leaf_hashes: list[bytes] = field(default_factory=list)
    root_ok: bool = False  # the leaves hash to the root the server signed
    chunks: dict[int, ChunkDescriptor] = field(default_factory=dict)  # leaf index -> descriptor
    index_of: dict[bytes, int] = field(default_factory=dict)  # chunk leaf bytes -> index
    access: list[dict[str, Any]] = field(default_factory=list)


def load_log(reader: BundleReader, trust: Trust, problems: list[Problem]) -> LogView:
    """The latest checkpoint and the leaves, checked against each other (leaves not parsed)."""
    view = LogView()
    view.checkpoint = _latest_checkpoint(reader, trust, problems)
    leaves = _read_leaves(reader, problems)
    if leaves is None:
        return view
    view.leaves = leaves
    view.leaf_hashes = [leaf_hash(leaf) for leaf in leaves]
    cp = view.checkpoint
    if cp is not None:
        if cp.size != len(leaves):
            _error(problems, "log_root", LEAVES, f"{LEAVES} holds {len(leaves)} leaves but "
                   f"{CHECKPOINT} covers {cp.size}: the log was cut or padded")
        elif root_hash(view.leaf_hashes) != cp.root:
            _error(problems, "log_root", LEAVES, f"{LEAVES} does not hash to the root the "
                   f"server signed in {CHECKPOINT}: the log was altered")
        else:
            view.root_ok = True
    return view


Known = dict[bytes, ChunkDescriptor]  # descriptor notes whose device signature already verified


def classify_leaves(view: LogView, trust: Trust, known: Known, problems: list[Problem]) -> None:
    """Parse and check every leaf: chunk descriptors (device-signed) and access entries."""
    for index, leaf in enumerate(view.leaves):
        _classify_leaf(index, leaf, trust, view, known, problems)


def _latest_checkpoint(reader: BundleReader, trust: Trust,
                       problems: list[Problem]) -> Checkpoint | None:
    if not reader.exists(CHECKPOINT):
        _error(problems, "log_checkpoint", CHECKPOINT, f"{CHECKPOINT} is missing")
        return None
    if trust.server_key is None:
        return None
    try:
        cp = open_checkpoint(reader.read_text(CHECKPOINT), trust.server_key)
    except (CryptoError, UnicodeDecodeError) as exc:
        _error(problems, "log_checkpoint", CHECKPOINT, f"{CHECKPOINT} is not signed by the "
               f"server key in {MANIFEST} (fingerprint {trust.server_fingerprint}): {exc}")
        return None
    if cp.origin != trust.origin:
        _error(problems, "log_checkpoint", CHECKPOINT, f"{CHECKPOINT} is the checkpoint of "
               f"another log ({cp.origin!r}), not {trust.origin!r}")
        return None
    return cp


def _read_leaves(reader: BundleReader, problems: list[Problem]) -> list[bytes] | None:
    if not reader.exists(LEAVES):
        _error(problems, "log_leaves", LEAVES, f"{LEAVES} is missing")
        return None
    leaves: list[bytes] = []
    try:
        for line, record in reader.read_jsonl(LEAVES):
            if not isinstance(record, dict) or record.get("index") != len(leaves):
                _error(problems, "log_leaves", LEAVES, f"{LEAVES} line {line}: expected leaf "
                       f"{len(leaves)} (leaves must be listed in order, none left out)")
                return None
            leaves.append(base64.b64decode(record["data"], validate=True))
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, binascii.Error) as exc:
        _error(problems, "log_leaves", LEAVES, f"{LEAVES} is not a valid leaf list ({exc})")
        return None
    return leaves


def _classify_leaf(index: int, leaf: bytes, trust: Trust, view: LogView, known: Known,
                   problems: list[Problem]) -> None:
    where = f"{LEAVES} leaf {index}"
    try:
        text = leaf.decode("utf-8")
    except UnicodeDecodeError:
        _error(problems, "log_leaf", LEAVES, f"{where} is not UTF-8 text")
        return
    kind = text.split("\n", 1)[0]
    if kind == CHUNK_KIND:
        try:
            desc = known.get(leaf) or open_device_descriptor(text, trust.devices)[0]
        except CryptoError as exc:
            _error(problems, "log_leaf", LEAVES, f"{where}: chunk descriptor does not verify: "
                   + forged_message(text, trust.devices, exc))
            return
        if desc.encounter != trust.encounter:
            _error(problems, "log_leaf", LEAVES, f"{where} describes a chunk of another "
                   f"encounter ({desc.encounter})")
            return
        view.chunks[index] = desc
        view.index_of.setdefault(leaf, index)
    elif kind == ACCESS_KIND:
        entry = _access_entry(text, trust)
        if entry is None or entry.get("encounter") != trust.encounter:
            _error(problems, "access_log", LEAVES, f"{where} is not an access record of this "
                   "encounter signed by the server key")
            return
        view.access.append({"index": index, **entry})
    else:
        problems.append(Problem(WARNING, "log_leaf_kind", f"{where} is of an unknown kind "
                                f"{kind[:40]!r} (not checked)", LEAVES))


def _access_entry(text: str, trust: Trust) -> dict[str, Any] | None:
    """The fields of an access leaf: a record signed by the server (crypto/access.py)."""
    if trust.server_key is None:
        return None
    try:
        record = open_access(text, trust.server_key)
    except CryptoError:
        return None
    return {"encounter": record.encounter, "contact": record.contact, "what": record.what,
            "time": record.time}


# ---------------------------------------------------------------- consistency


def prefix_roots(leaf_hashes: list[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """The root of the log's first n leaves for each n in `sizes`, in one pass.

    Keeps the RFC 6962 'frontier' (roots of the perfect subtrees of the binary decomposition
    of n, largest first); the root at n folds them right to left.
    """
    wanted = set(sizes)
    roots: dict[int, bytes] = {}
    frontier: list[tuple[int, bytes]] = []  # (subtree size, root)
    for n, leaf in enumerate(leaf_hashes, start=1):
        node = (1, leaf)
        while frontier and frontier[-1][0] == node[0]:
            left = frontier.pop()
            node = (left[0] * 2, node_hash(left[1], node[1]))
        frontier.append(node)
        if n in wanted:
            root = frontier[-1][1]
            for _size, left_root in reversed(frontier[:-1]):
                root = node_hash(left_root, root)
            roots[n] = root
    return roots


def check_consistency(reader: BundleReader, view: LogView, receipt_roots: dict[int, set[bytes]],
                      problems: list[Problem]) -> None:
    """Every checkpoint the server signed in a receipt is a prefix of the latest one."""
    latest = view.checkpoint
    if latest is None:
        return
    for size in sorted(s for s in receipt_roots if s > latest.size):
        _error(problems, "log_consistency", CHECKPOINT, f"receipts hold a checkpoint of size "
               f"{size}, larger than the latest ({latest.size}): {CHECKPOINT} is stale or cut")
    if view.root_ok:
        roots = prefix_roots(view.leaf_hashes, receipt_roots)
        for size, seen in sorted(receipt_roots.items()):
            if size in roots and seen - {roots[size]}:
                _error(problems, "log_consistency", LEAVES, f"the server signed a checkpoint "
                       f"of size {size} whose root differs from the first {size} leaves of "
                       "the log: the log was rewritten after that receipt")
    _check_consistency_proofs(reader, latest, receipt_roots, problems)


def _check_consistency_proofs(reader: BundleReader, latest: Checkpoint,
                              receipt_roots: dict[int, set[bytes]],
                              problems: list[Problem]) -> None:
    proven: set[int] = set()
    if reader.exists(CONSISTENCY):
        try:
            for line, record in reader.read_jsonl(CONSISTENCY):
                first, second = record["first"], record["second"]
                proof = [base64.b64decode(h, validate=True) for h in record["proof"]]
                where = f"{CONSISTENCY} line {line}"
                if second != latest.size or first not in receipt_roots:
                    continue
                for root in receipt_roots[first]:
                    try:
                        verify_consistency(first, second, root, latest.root, proof)
                    except BadProof as exc:
                        _error(problems, "consistency_proof", CONSISTENCY, f"{where}: the "
                               f"proof from size {first} to {second} does not verify ({exc})")
                        break
                else:
                    proven.add(first)
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, binascii.Error) as exc:
            _error(problems, "consistency_proof", CONSISTENCY, f"{CONSISTENCY} is not valid "
                   f"({exc})")
            return
    unproven = sorted(s for s in receipt_roots if s < latest.size and s not in proven)
    if unproven:
        problems.append(Problem(WARNING, "consistency_proof", f"{CONSISTENCY} has no proof for "
                                f"tree sizes {unproven}; checked against the leaves instead",
                                CONSISTENCY))


# ---------------------------------------------------------------- access log


def check_access_file(reader: BundleReader, view: LogView, problems: list[Problem]) -> None:
    """access.jsonl must say exactly what the access leaves of the log say."""
    listed: list[Any] = []
    if reader.exists(ACCESS):
        try:
            listed = [record for _line, record in reader.read_jsonl(ACCESS)]
        except (ValueError, UnicodeDecodeError) as exc:
            _error(problems, "access_log", ACCESS, f"{ACCESS} is not valid JSON lines ({exc})")
            return
    if listed != view.access:
        _error(problems, "access_log", ACCESS, f"{ACCESS} does not match the access entries of "
               f"the log ({len(listed)} listed, {len(view.access)} in the log)")
