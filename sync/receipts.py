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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crypto.checkpoint import Checkpoint, encounter_origin, open_checkpoint
from crypto.errors import CryptoError
from crypto.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion
from sync.api import unb64
from sync.errors import UntrustedServer
from sync.outbox import ChunkKey, Outbox

ConsistencySource = Callable[[str, int, int], list[bytes]]


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
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, encounter_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(encounter_id, threading.Lock())

    def verify(self, key: ChunkKey, descriptor_note: str, receipt: Mapping[str, Any]) -> None:
        """Raise UntrustedServer unless the receipt proves the chunk is in a consistent log."""
        try:
            checkpoint, index, proof = self._check_receipt(key, descriptor_note, receipt)
            with self._lock(key.encounter):
                self._check_consistency(key.encounter, checkpoint, index, proof,
                                        str(receipt["checkpoint"]))
        except CryptoError as exc:
            raise UntrustedServer(f"receipt for chunk {key} does not verify: "
                                  f"{type(exc).__name__}: {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            raise UntrustedServer(f"receipt for chunk {key} is malformed: {exc!r}")

    def _check_receipt(self, key: ChunkKey, note: str, receipt: Mapping[str, Any]
                       ) -> tuple[Checkpoint, int, list[bytes]]:
        named = (receipt["encounter_id"], receipt["stream"], int(receipt["seq"]))
        if named != (key.encounter, key.stream, key.seq):
            raise UntrustedServer(f"receipt for chunk {key} names another chunk: {named}")
        checkpoint = open_checkpoint(str(receipt["checkpoint"]), self.server_key)
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
        return checkpoint, index, proof

    def _check_consistency(self, encounter_id: str, checkpoint: Checkpoint, index: int,
                           proof: list[bytes], note: str) -> None:
        size, root = checkpoint.size, checkpoint.root
        proven = {size: root}
        if index == size - 1 and size > 1:
            proven[size - 1] = root_before_last_leaf(proof)
        known = self.outbox.checkpoints(encounter_id)
        for at, seen in proven.items():
            if at in known and known[at] != seen:
                raise UntrustedServer(
                    f"the server forked the log of encounter {encounter_id}: two different "
                    f"roots signed for tree size {at}")
        if known:
            self._link_to_largest(encounter_id, known, size, root, proven)
        self.outbox.add_checkpoints(encounter_id, proven, note)

    def _link_to_largest(self, encounter_id: str, known: dict[int, bytes], size: int,
                         root: bytes, proven: dict[int, bytes]) -> None:
        largest = max(known)
        if size == largest or (size < largest and size in known):
            return  # equal roots were checked above
        if size > largest and size - 1 in proven and size - 1 == largest:
            return  # the folded inclusion proof reproduced the known root at size - 1
        try:
            if size > largest:
                path = self.fetch_consistency(encounter_id, largest, size)
                verify_consistency(largest, size, known[largest], root, path)
            else:
                path = self.fetch_consistency(encounter_id, size, largest)
                verify_consistency(size, largest, root, known[largest], path)
        except CryptoError as exc:
            raise UntrustedServer(
                f"checkpoint of size {size} for encounter {encounter_id} is inconsistent with "
                f"the one of size {largest} seen before: {exc}")
