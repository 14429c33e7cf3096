"""Encounters: made on the phone with its own UUID, created here idempotently, maybe much later.

Creating one also signs the checkpoint of its empty log, so every encounter always has a latest
checkpoint and consistency proofs can start from size 0.
"""

from __future__ import annotations

from crypto.checkpoint import Checkpoint, encounter_origin, sign_checkpoint
from crypto.merkle import EMPTY_ROOT
from server.context import Services
from server.errors import ApiError
from server.evidence.deletion import refuse_if_deleted
from server.identity.auth import Caller, iso
from server.store.contacts import ACTIVE
from server.store.encounters import Encounter
from server.store.log import StoredCheckpoint
from server.trust.release import IMMEDIATE, announce_releases


def log_origin(server_name: str, encounter_id: str) -> str:
    return encounter_origin(server_name, encounter_id)


def signed_checkpoint(svc: Services, encounter_id: str, size: int,
                      root: bytes) -> StoredCheckpoint:
    checkpoint = Checkpoint(log_origin(svc.server_name, encounter_id), size, root)
    return StoredCheckpoint(size, root, sign_checkpoint(checkpoint, svc.signing_key))


def put_encounter(svc: Services, caller: Caller, encounter_id: str,
                  started_at: str) -> tuple[Encounter, bool]:
    """(encounter, created). An existing one of the caller's account is returned unchanged."""
    unix_now = svc.now()
    now = iso(unix_now)
    with svc.store.write() as tx:
        encounter = Encounter(encounter_id, caller.account_id, started_at, now,
                              caller.device_id, 0)
        existing = tx.encounter(encounter_id)
        if existing is None and not tx.insert_encounter(encounter):
            existing = tx.encounter(encounter_id)  # another API node created it just now
        if existing is not None:
            if existing.account_id != caller.account_id:
                raise ApiError(409, "encounter_taken",
                               "This encounter id belongs to another account; make a new UUID.")
            refuse_if_deleted(tx, encounter_id)
            return existing, False
        tx.insert_checkpoint(encounter_id, signed_checkpoint(svc, encounter_id, 0, EMPTY_ROOT),
                             now)
        tx.insert_change(caller.account_id, "encounter_created", now, encounter_id)
        # Contacts who may follow recordings live hear of this one at once.
        announce_releases(tx, unix_now, [c for c in tx.contacts_of(caller.account_id, ACTIVE)
                                         if c.policy == IMMEDIATE], [encounter])
    return encounter, True
