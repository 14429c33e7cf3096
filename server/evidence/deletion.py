"""Deleting an encounter, which may be coerced: delayed, announced, and stoppable by a contact.

- The owner's device asks (DELETE /v1/encounters/{id}); the deletion is due DELETION_DELAY_SECONDS
  later (72 h by default). Every active trusted contact of the owner is notified at once
  (`deletion_scheduled`, with the due time), whether or not the encounter was released to them:
  whoever forces a person to delete a recording can usually also force a "safe" mark, so a
  deletion must not be able to slip past contacts who never got a release.
- Until the worker begins the deletion, any of those contacts can place a hold; a held request
  never runs. The owner can cancel a request (held or not) and may ask again later, which is
  announced and delayed again. The owner's view does not say which contact held it.
- The worker carries out a due request: the encounter is tombstoned (reads answer 410 `deleted`
  from then on, uploads are refused), its blobs are removed from the blob store, and its chunk
  rows and log leaves are dropped. The tombstone keeps the last signed checkpoint, so anyone who
  holds an earlier copy can still show what existed up to the deletion.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from server.blobs.store import BlobStore, BlobStoreError
from server.context import Services
from server.errors import ApiError, not_found
from server.identity.auth import CONTACT, DEVICE, Caller, iso
from server.store.contacts import ACTIVE
from server.store.deletion import DeletionRequest, Tombstone
from server.store.encounters import Encounter
from server.store.metadata import Store, Tx
from server.trust.notify import enqueue_notification
from server.trust.release import encounter_release

log = logging.getLogger("safehold.deletion")
BATCH = 20
# Notifications that tell a contact an encounter exists (every active contact gets them).
ANNOUNCED = ("deletion_scheduled", "deletion_cancelled", "deletion_held", "encounter_deleted")


@dataclass(frozen=True)
class DeletionView:
    """What the owner and contacts are shown of a deletion request."""

    encounter_id: str
    state: str
    requested_at: str
    due_at: str
    held_at: str | None
    cancelled_at: str | None
    deleted_at: str | None

    @classmethod
    def of(cls, request: DeletionRequest) -> DeletionView:
        return cls(request.encounter_id, request.state, request.requested_at, request.due_at,
                   request.held_at, request.cancelled_at, request.done_at)


def deleted_error(tombstone: Tombstone) -> ApiError:
    return ApiError(410, "deleted", "This encounter was deleted at its owner's request; only "
                    "its last checkpoint is kept.",
                    details={"deleted_at": tombstone.deleted_at, "tree_size": tombstone.tree_size,
                             "checkpoint": tombstone.checkpoint})


def refuse_if_deleted(tx: Tx, encounter_id: str) -> None:
    tombstone = tx.tombstone(encounter_id)
    if tombstone is not None:
        raise deleted_error(tombstone)


def _announce(tx: Tx, encounter: Encounter, kind: str, at: str,
              details: dict[str, Any] | None = None) -> None:
    for contact_id in active_contact_ids(tx, encounter.account_id, encounter.encounter_id):
        enqueue_notification(tx, contact_id=contact_id, kind=kind,
                             encounter_id=encounter.encounter_id, at=at, details=details)
    tx.insert_change(encounter.account_id, kind, at, encounter.encounter_id)


def _owned_live_encounter(tx: Tx, caller: Caller, encounter_id: str) -> Encounter:
    encounter = tx.encounter(encounter_id)
    if encounter is None or caller.kind != DEVICE or caller.account_id != encounter.account_id:
        raise not_found()
    refuse_if_deleted(tx, encounter_id)
    return encounter


def request_deletion(svc: Services, caller: Caller, encounter_id: str) -> DeletionView:
    """Schedule (or return the already scheduled) deletion; 409 while a contact holds it."""
    now = svc.now()
    with svc.store.write() as tx:
        encounter = _owned_live_encounter(tx, caller, encounter_id)
        current = tx.open_deletion(encounter_id)
        if current is not None and current.state == "held":
            raise ApiError(409, "deletion_held", "A trusted contact placed a hold on deleting "
                           "this encounter. Cancel that request before asking again.")
        if current is not None:
            return DeletionView.of(current)
        due = now + int(svc.config["DELETION_DELAY_SECONDS"])
        request = DeletionRequest(str(uuid.uuid4()), encounter_id, encounter.account_id,
                                  caller.device_id, iso(now), iso(due), due, "scheduled")
        tx.insert_deletion(request)
        _announce(tx, encounter, "deletion_scheduled", iso(now), {"due_at": request.due_at})
    return DeletionView.of(request)


def cancel_deletion(svc: Services, caller: Caller, encounter_id: str) -> DeletionView:
    now = iso(svc.now())
    with svc.store.write() as tx:
        encounter = _owned_live_encounter(tx, caller, encounter_id)
        current = tx.open_deletion(encounter_id)
        if current is None:
            raise ApiError(409, "no_deletion_scheduled",
                           "No deletion of this encounter is scheduled or held.")
        tx.set_deletion_state(current.request_id, "cancelled", cancelled_at=now)
        _announce(tx, encounter, "deletion_cancelled", now)
        cancelled = tx.deletion_request(current.request_id)
    assert cancelled is not None
    return DeletionView.of(cancelled)


def place_hold(svc: Services, caller: Caller, encounter_id: str) -> DeletionView:
    """A contact stops a scheduled deletion (idempotent while held)."""
    now = iso(svc.now())
    with svc.store.write() as tx:
        encounter = tx.encounter(encounter_id)
        if encounter is None or caller.kind != CONTACT \
                or not may_see_deletion(tx, caller, encounter, svc.now()):
            raise not_found()
        refuse_if_deleted(tx, encounter_id)
        current = tx.open_deletion(encounter_id)
        if current is None:
            raise ApiError(409, "no_deletion_scheduled",
                           "No deletion of this encounter is scheduled; there is nothing to hold.")
        if current.state == "scheduled":
            tx.set_deletion_state(current.request_id, "held", held_by=caller.contact_id,
                                  held_at=now)
            _announce(tx, encounter, "deletion_held", now)
        held = tx.deletion_request(current.request_id)
    assert held is not None
    return DeletionView.of(held)


def deletion_status(svc: Services, caller: Caller, encounter_id: str) -> DeletionView:
    """The encounter's latest deletion request: for the owner and the owner's contacts."""
    with svc.store.read() as tx:
        encounter = tx.encounter(encounter_id)
        if encounter is None or not may_see_deletion(tx, caller, encounter, svc.now()):
            raise not_found()
        latest = tx.latest_deletion(encounter_id)
    if latest is None:
        raise ApiError(404, "no_deletion", "No deletion of this encounter was ever requested.")
    return DeletionView.of(latest)


def open_deletion_view(tx: Tx, encounter_id: str) -> DeletionView | None:
    """For encounter bodies: the scheduled or held request, if any."""
    current = tx.open_deletion(encounter_id)
    return DeletionView.of(current) if current is not None else None


def may_see_deletion(tx: Tx, caller: Caller, encounter: Encounter, now: float) -> bool:
    """The owner's devices, and every active contact of the owner that knows the encounter
    exists: released to it, or told of a deletion of it (deletions are announced to every
    active contact, released or not). Any other contact is answered as for a missing id."""
    if caller.kind == DEVICE:
        return caller.account_id == encounter.account_id
    if caller.kind != CONTACT or caller.contact_id not in active_contact_ids(
            tx, encounter.account_id, encounter.encounter_id):
        return False
    if tx.told_of(caller.contact_id, encounter.encounter_id, ANNOUNCED):
        return True
    contact = tx.contact(caller.contact_id)
    return contact is not None and encounter_release(tx, contact, encounter, now) is not None


def active_contact_ids(tx: Tx, account_id: str, encounter_id: str) -> list[str]:
    """The active contacts told of (and able to hold) a deletion of the encounter: every
    trusted contact, and a one-encounter share's recipient for her encounter only."""
    return [contact.contact_id for contact in tx.contacts_of(account_id, ACTIVE)
            if tx.shared_encounter_of_contact(contact.contact_id) in (None, encounter_id)]


# -- the worker's part --------------------------------------------------------------------------
def carry_out_due(store: Store, blobs: BlobStore, now: float) -> int:
    """Run every due, unheld deletion; returns how many finished."""
    with store.read() as tx:
        due = tx.due_deletions(now, BATCH)
    return sum(1 for request in due if _carry_out(store, blobs, request, now))


def _carry_out(store: Store, blobs: BlobStore, request: DeletionRequest, now: float) -> bool:
    with store.write() as tx:  # re-read under the write lock: a hold may have just arrived
        current = tx.deletion_request(request.request_id)
        if current is None or current.state not in ("scheduled", "deleting"):
            return False
        if current.state == "scheduled":
            _begin(tx, current, iso(now))
        keys = tx.blob_keys(request.encounter_id)
    try:
        for key in keys:
            blobs.delete(key)
    except BlobStoreError:
        log.exception("deleting the blobs of %s failed; will retry", request.encounter_id)
        return False
    with store.write() as tx:
        tx.erase_encounter_content(request.encounter_id)
        tx.set_deletion_state(request.request_id, "done", done_at=iso(now))
        encounter = tx.encounter(request.encounter_id)
        assert encounter is not None
        _announce(tx, encounter, "encounter_deleted", iso(now))
    log.info("encounter %s deleted (%d blobs)", request.encounter_id, len(keys))
    return True


def _begin(tx: Tx, request: DeletionRequest, at: str) -> None:
    """From here on the encounter reads as deleted and takes no uploads."""
    checkpoint = tx.checkpoint(request.encounter_id)
    assert checkpoint is not None  # signed when the encounter was created
    tx.insert_tombstone(Tombstone(request.encounter_id, request.account_id, request.request_id,
                                  at, checkpoint.tree_size, checkpoint.note))
    tx.set_deletion_state(request.request_id, "deleting")
