"""Alert and safe marks: what the owner's devices say about an encounter while it happens.

A mark is stored with the server's time (a phone may be offline or its clock wrong) and a
change row, in one transaction. An alert also releases the encounter to the contacts whose
policy waits for one, announces that, and tells every contact who may now read it.
"""

from __future__ import annotations

from server.context import Services
from server.identity.auth import Caller, iso
from server.store.contacts import ACTIVE, ALERT, Mark
from server.trust.access import writable_encounter
from server.trust.notify import enqueue_notification
from server.trust.release import announce_releases, encounter_release


def add_mark(svc: Services, caller: Caller, encounter_id: str, kind: str) -> Mark:
    now = svc.now()
    with svc.store.write() as tx:
        encounter = writable_encounter(tx, caller, encounter_id)
        mark = Mark(encounter_id, kind, iso(now), caller.device_id)
        tx.insert_mark(mark)
        tx.insert_change(caller.account_id, kind, mark.at, encounter_id)
        if kind == ALERT:
            contacts = tx.contacts_of(caller.account_id, ACTIVE)
            announce_releases(tx, now, contacts, [encounter])
            for contact in contacts:
                if encounter_release(tx, contact, encounter, now) is not None:
                    enqueue_notification(tx, contact_id=contact.contact_id, kind="alert",
                                         encounter_id=encounter_id, at=mark.at)
    return mark
