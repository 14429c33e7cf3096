"""What a trusted contact lists: encounters released to it, and its changes feed.

Both first announce releases that became true since the last look (a check-in deadline that
passed), so the feed's `released` row always comes before the contact needs it.
"""

from __future__ import annotations

from typing import Any

from server.context import Services
from server.evidence.deletion import open_deletion_view
from server.evidence.encounters import log_origin
from server.identity.auth import Caller, iso
from server.store.changes import Change
from server.store.contacts import ACTIVE, Contact
from server.store.metadata import Tx
from server.trust.release import announce_releases, encounter_release, released_encounters

# Account-wide change kinds a contact sees, for encounters released to it.
RELEASED_KINDS = ("chunk_stored", "alert", "safe")
# ... and those every active contact sees, released or not: a deletion may be coerced, and any
# contact may hold it (server/evidence/deletion.py).
DELETION_KINDS = ("deletion_scheduled", "deletion_held", "deletion_cancelled",
                  "encounter_deleted")
SHARED_KINDS = RELEASED_KINDS + DELETION_KINDS
SCAN_BATCH = 500


def _contact(tx: Tx, caller: Caller) -> Contact | None:
    contact = tx.contact(caller.contact_id)
    return contact if contact is not None and contact.status == ACTIVE else None


def released_list(svc: Services, caller: Caller) -> list[dict[str, Any]]:
    now = svc.now()
    with svc.store.write() as tx:
        contact = _contact(tx, caller)
        if contact is None:
            return []
        announce_releases(tx, now, [contact])
        found = [(e, r, open_deletion_view(tx, e.encounter_id))
                 for e, r in released_encounters(tx, contact, now)]
    return [{"encounter_id": e.encounter_id, "started_at": e.started_at,
             "created_at": e.created_at, "log_origin": log_origin(svc.server_name,
                                                                  e.encounter_id),
             "released_at": iso(r.at.timestamp()), "reason": r.reason,
             "deletion": vars(d) if d is not None else None} for e, r, d in found]


def contact_changes(svc: Services, caller: Caller, after: int,
                    limit: int) -> tuple[list[Change], int, bool]:
    """(changes, cursor id, done): the contact's `released` rows, and chunk_stored/alert/safe
    rows of encounters released to it now; rows it may not see are skipped for good."""
    now = svc.now()
    with svc.store.write() as tx:
        contact = _contact(tx, caller)
        if contact is None:
            return [], after, True
        announce_releases(tx, now, [contact])
        return _scan(tx, contact, after, limit, now)


def _scan(tx: Tx, contact: Contact, after: int, limit: int,
          now: float) -> tuple[list[Change], int, bool]:
    visible: list[Change] = []
    cache: dict[str, bool] = {}
    last = after
    scoped = tx.shared_encounter_of_contact(contact.contact_id)  # a share: one encounter only
    while True:
        batch = tx.contact_change_candidates(contact.account_id, contact.contact_id, last,
                                             SHARED_KINDS, SCAN_BATCH)
        for change in batch:
            if scoped is not None and change.encounter_id != scoped:
                pass
            elif change.kind in ("released", *DELETION_KINDS) \
                    or _released(tx, contact, change, cache, now):
                if len(visible) == limit:
                    return visible, visible[-1].id, False
                visible.append(change)
            last = change.id
        if len(batch) < SCAN_BATCH:
            return visible, last, True


def _released(tx: Tx, contact: Contact, change: Change, cache: dict[str, bool],
              now: float) -> bool:
    encounter_id = change.encounter_id
    if encounter_id is None:
        return False
    if encounter_id not in cache:
        encounter = tx.encounter(encounter_id)
        cache[encounter_id] = encounter is not None and \
            encounter_release(tx, contact, encounter, now) is not None
    return cache[encounter_id]
