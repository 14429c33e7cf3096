"""Who may see and write what. Every encounter lookup in the API goes through here.

- The account's own devices read and write its encounters.
- A trusted contact reads an encounter only while its release policy says so (trust/release.py,
  decided now from stored facts); it never writes. Each read it makes is then recorded in the
  access log and the encounter's Merkle log (trust/access_log.py, after the response is made).
- A deleted encounter answers 410 `deleted` to those who could read it (evidence/deletion.py).
- Anyone else — another account, a contact before release, a revoked contact — is told "not
  found", exactly as for an encounter that does not exist, so ids can't be probed.
"""

from __future__ import annotations

from flask import g, has_request_context

from server.context import services
from server.errors import not_found
from server.evidence.deletion import refuse_if_deleted
from server.identity.auth import CONTACT, DEVICE, Caller
from server.store.encounters import Encounter
from server.store.metadata import Tx
from server.trust.release import encounter_release

CONTACT_READ = "safehold_contact_read"  # flask.g attribute: the encounter a contact read


def may_read(tx: Tx, caller: Caller, encounter: Encounter, now: float) -> bool:
    if caller.kind == DEVICE:
        return caller.account_id == encounter.account_id
    if caller.kind == CONTACT:
        contact = tx.contact(caller.contact_id)
        return contact is not None and encounter_release(tx, contact, encounter, now) is not None
    return False


def may_write(caller: Caller, encounter: Encounter) -> bool:
    return caller.kind == DEVICE and caller.account_id == encounter.account_id


def readable_encounter(tx: Tx, caller: Caller, encounter_id: str,
                       now: float | None = None) -> Encounter:
    encounter = tx.encounter(encounter_id)
    when = services().now() if now is None else now
    if encounter is None or not may_read(tx, caller, encounter, when):
        raise not_found()
    refuse_if_deleted(tx, encounter_id)  # 410 only to those who could read it
    if caller.kind == CONTACT and has_request_context():
        setattr(g, CONTACT_READ, encounter_id)  # server/trust/access_log.py records it
    return encounter


def writable_encounter(tx: Tx, caller: Caller, encounter_id: str) -> Encounter:
    encounter = tx.encounter(encounter_id)
    if encounter is None or not may_write(caller, encounter):
        raise not_found()
    refuse_if_deleted(tx, encounter_id)
    return encounter
