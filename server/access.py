"""Who may see and write what. Every encounter lookup in the API goes through here.

Today only the owner's devices may read or write an encounter. Trusted contacts (issue 4) get
read access by release policy: add that rule to `may_read` and nothing else needs to change.
Anyone else is told "not found", exactly as for an encounter that does not exist, so ids can't
be probed.
"""

from __future__ import annotations

from server.auth import Caller
from server.errors import not_found
from server.metadata import Tx
from server.metadata_encounters import Encounter


def may_read(caller: Caller, encounter: Encounter) -> bool:
    return caller.kind == "device" and caller.account_id == encounter.account_id


def may_write(caller: Caller, encounter: Encounter) -> bool:
    return caller.kind == "device" and caller.account_id == encounter.account_id


def readable_encounter(tx: Tx, caller: Caller, encounter_id: str) -> Encounter:
    encounter = tx.encounter(encounter_id)
    if encounter is None or not may_read(caller, encounter):
        raise not_found()
    return encounter


def writable_encounter(tx: Tx, caller: Caller, encounter_id: str) -> Encounter:
    encounter = tx.encounter(encounter_id)
    if encounter is None or not may_write(caller, encounter):
        raise not_found()
    return encounter
