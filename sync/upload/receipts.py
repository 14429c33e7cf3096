"""Checking the server's receipts before a chunk counts as safe.

A receipt is trusted only when:
1. it names the chunk that was sent (encounter, stream, seq);
2. its checkpoint is signed by the server key pinned at registration, for this encounter's origin
   (`<server name>/safehold/encounter/<uuid>`), with the receipt's tree size;
3. the inclusion proof puts the leaf - the exact descriptor note bytes this device signed - at
   `leaf_index` under the checkpoint's root;
4. the checkpoint is consistent with every checkpoint this device already verified for the
   encounter (all must be prefixes of one append-only log).

For (4) the device keeps, per encounter, a set of (size, root) all proven to lie on one log. A new
checkpoint is compared with the largest of them: equal sizes must have equal roots; otherwise a
consistency proof is fetched from the server and verified. Fetching is skipped in the common case
of a receipt for the newest leaf (index = size - 1) right after the largest known checkpoint: the
inclusion proof of the last leaf consists of the roots of the perfect subtrees of the first
size - 1 leaves, so folding it yields the root at size - 1, which must equal the known one.
The uploader checks (1)-(3) at once and links receipts in tree-size order, so most need no
extra request; `verify` does all four in one call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.checkpoint import encounter_origin, open_checkpoint
from crypto.errors import CryptoError
from crypto.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion
from sync.api import unb64
from sync.errors import UntrustedServer
from sync.upload.findings import anchor_epoch
from sync.upload.outbox import ChunkKey, Outbox

ConsistencySource = Callable[[str, int, int], list[bytes]]
NewCheckpoints = dict[str, dict[int, tuple[bytes, str]]]  # encounter -> size -> (root, note)


@dataclass(frozen=True)
class Proven:
    """A receipt whose signature and inclusion proof verified; not yet linked to the others."""

    key: ChunkKey
    size: int
    root: bytes
    note: str  # the signed checkpoint
    before: bytes | None  # the root at size - 1, when the receipt is for the newest leaf

    def roots(self) -> dict[int, bytes]:
        found = {self.size: self.root}
        if self.before is not None:
            found[self.size - 1] = self.before
        return found


def root_before_last_leaf(last_leaf_path: Sequence[bytes]) -> bytes:
    """Root of the first size-1 leaves, from a verified inclusion proof of leaf size-1.

    Every sibling on the last leaf's path lies to its left, lowest first; folding them right to
    left rebuilds RFC 6962's tree of the preceding leaves.
    """
    root = last_leaf_path[0]
    for sibling in last_leaf_path[1:]:
        root = node_hash(sibling, root)
    return root


class ReceiptVerifier:
    """Verifies receipts against the pinned server key and the checkpoints seen so far."""

    def __init__(self, outbox: Outbox, server_key: str, server_name: str,
                 fetch_consistency: ConsistencySource) -> None:
        self.outbox = outbox
        self.server_key = server_key
        self.server_name = server_name
        self.fetch_consistency = fetch_consistency
        self._chains: dict[str, dict[int, bytes]] = {}
        self._epoch = anchor_epoch(outbox)
        self._unsaved: NewCheckpoints = {}
        self._lock = threading.RLock()

    def verify(self, key: ChunkKey, descriptor_note: str, receipt: Mapping[str, Any]) -> None:
        """All four checks, fetching a consistency proof if needed; remembers the checkpoint."""
        with self._lock:
            self.link(self.check(key, descriptor_note, receipt), fetch=True)
            for encounter, roots in self.take_new_checkpoints().items():
                self.outbox.add_checkpoints(encounter, roots)

    def check(self, key: ChunkKey, note: str, receipt: Mapping[str, Any]) -> Proven:
        """Checks 1-3 (no network); raises UntrustedServer."""
        try:
            return self._check(key, note, receipt)
        except CryptoError as exc:
            raise UntrustedServer(f"receipt for chunk {key} does not verify: "
                                  f"{type(exc).__name__}: {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            raise UntrustedServer(f"receipt for chunk {key} is malformed: {exc!r}")

    def _check(self, key: ChunkKey, note: str, receipt: Mapping[str, Any]) -> Proven:
        named = (receipt["encounter_id"], receipt["stream"], int(receipt["seq"]))
        if named != (key.encounter, key.stream, key.seq):
            raise UntrustedServer(f"receipt for chunk {key} names another chunk: {named}")
        checkpoint_note = str(receipt["checkpoint"])
        checkpoint = open_checkpoint(checkpoint_note, self.server_key)
        origin = encounter_origin(self.server_name, key.encounter)
        if checkpoint.origin != origin:
            raise UntrustedServer(f"receipt for chunk {key} has a checkpoint of another log "
                                  f"({checkpoint.origin!r}, expected {origin!r})")
        index, size = int(receipt["leaf_index"]), int(receipt["tree_size"])
        if size != checkpoint.size or not 0 <= index < size:
            raise UntrustedServer(f"receipt for chunk {key}: leaf {index} / tree size {size} "
                                  f"disagree with its checkpoint (size {checkpoint.size})")
        proof = [unb64(item) for item in receipt["inclusion_proof"]]
        verify_inclusion(leaf_hash(note.encode("utf-8")), index, size, proof, checkpoint.root)
        before = root_before_last_leaf(proof) if index == size - 1 and size > 1 else None
        return Proven(key, size, checkpoint.root, checkpoint_note, before)

    def link(self, proven: Proven, fetch: bool) -> bool:
        """Check 4. False (and nothing remembered) if a proof is needed and `fetch` is False.

        Raises UntrustedServer on a fork; NetworkError/ServerRefusal if fetching fails.
        """
        with self._lock:
            encounter = proven.key.encounter
            known = self._chain(encounter)
            for size, root in proven.roots().items():
                if size in known and known[size] != root:
                    raise UntrustedServer(
                        f"the server forked the log of encounter {encounter}: two different "
                        f"roots signed for tree size {size} (receipt for chunk {proven.key})")
            if known and not self._linked_locally(known, proven):
                if not fetch:
                    return False
                self._prove(encounter, known, proven)
            self._remember(encounter, proven)
            return True

    def _linked_locally(self, known: dict[int, bytes], proven: Proven) -> bool:
        largest = max(known)
        if proven.size in known:
            return True  # equal roots were checked
        return proven.size == largest + 1 and proven.before is not None

    def _prove(self, encounter: str, known: dict[int, bytes], proven: Proven) -> None:
        largest, size = max(known), proven.size
        first, second = sorted((largest, size))
        roots = {largest: known[largest], size: proven.root}
        path = self.fetch_consistency(encounter, first, second)
        try:
            verify_consistency(first, second, roots[first], roots[second], path)
        except CryptoError as exc:
            raise UntrustedServer(
                f"checkpoint of size {size} for encounter {encounter} is inconsistent with "
                f"the one of size {largest} seen before (receipt for chunk {proven.key}): {exc}")

    def _chain(self, encounter: str) -> dict[int, bytes]:
        epoch = anchor_epoch(self.outbox)
        if epoch != self._epoch:  # a rollback check re-anchored an encounter (findings.py):
            # forget the old chains, and never write their checkpoints beside the new anchor
            self._chains, self._unsaved, self._epoch = {}, {}, epoch
        if encounter not in self._chains:
            self._chains[encounter] = self.outbox.checkpoints(encounter)
        return self._chains[encounter]

    def _remember(self, encounter: str, proven: Proven) -> None:
        chain = self._chain(encounter)
        unsaved = self._unsaved.setdefault(encounter, {})
        for size, root in proven.roots().items():
            if size not in chain:
                chain[size] = root
                unsaved[size] = (root, proven.note if size == proven.size else "")

    def take_new_checkpoints(self) -> NewCheckpoints:
        """Checkpoints linked since the last call, for the outbox (written with the acks)."""
        with self._lock:
            taken, self._unsaved = self._unsaved, {}
            return taken
