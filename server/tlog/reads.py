"""Reading an encounter's Merkle log: checkpoints, proofs and leaves.

Appends keep a compact frontier (server/tlog/frontier.py); arbitrary proofs for readers are
computed here from all leaf hashes with crypto.merkle. Reads are rare next to uploads, and
verifiers need them to be exactly RFC 9162.
"""

from __future__ import annotations

import base64

from crypto.merkle import consistency_proof, inclusion_proof
from schemas.log import MAX_LEAVES_PER_PAGE
from server.errors import ApiError
from server.store.encounters import Encounter
from server.store.log import StoredCheckpoint
from server.store.metadata import Tx


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _out_of_range(message: str) -> ApiError:
    return ApiError(400, "out_of_range", message)


def latest_checkpoint(tx: Tx, encounter: Encounter) -> StoredCheckpoint:
    found = tx.checkpoint(encounter.encounter_id)
    assert found is not None  # signed when the encounter was created
    return found


def checkpoint_at(tx: Tx, encounter: Encounter, size: int) -> StoredCheckpoint:
    found = tx.checkpoint(encounter.encounter_id, size)
    if found is None:
        raise ApiError(404, "not_found", f"No checkpoint was signed at tree size {size}; "
                       f"the log has {encounter.log_size} leaves.")
    return found


def consistency(tx: Tx, encounter: Encounter, first: int, second: int) -> list[str]:
    if not 1 <= first <= second <= encounter.log_size:
        raise _out_of_range(f"Need 1 <= first <= second <= {encounter.log_size} (the log size).")
    hashes = tx.leaf_hashes(encounter.encounter_id, second)
    return [b64(h) for h in consistency_proof(first, hashes)]


def inclusion(tx: Tx, encounter: Encounter, index: int, tree_size: int) -> list[str]:
    if not 0 <= index < tree_size <= encounter.log_size:
        raise _out_of_range(f"Need 0 <= index < tree_size <= {encounter.log_size} "
                            "(the log size).")
    hashes = tx.leaf_hashes(encounter.encounter_id, tree_size)
    return [b64(h) for h in inclusion_proof(index, hashes)]


def leaves(tx: Tx, encounter: Encounter, start: int, end: int | None) -> list[tuple[int, bytes]]:
    """Leaves [start, end) (end defaults to the log size), at most MAX_LEAVES_PER_PAGE."""
    end = encounter.log_size if end is None else end
    if not start <= end <= encounter.log_size:
        raise _out_of_range(f"Need start <= end <= {encounter.log_size} (the log size).")
    return tx.leaves(encounter.encounter_id, start, min(end, start + MAX_LEAVES_PER_PAGE))
