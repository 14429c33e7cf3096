"""The signed contact set on the server: kept for the account's devices, never made by it."""

from __future__ import annotations

import time

from crypto.contact_set import open_contact_set
from crypto.roster import RosterError, open_roster
from server.context import Services
from server.errors import ApiError
from server.identity.auth import Caller, iso


def put_contact_set(svc: Services, caller: Caller, note: str) -> bool:
    """Store a newer contact set signed by a roster device; False if it is the stored one."""
    with svc.store.write() as tx:
        notes = tx.roster_notes(caller.account_id)
        try:
            roster = open_roster(notes, svc.server_name, account=caller.account_id)
            found = open_contact_set(note, roster, svc.server_name)
        except RosterError as exc:
            raise ApiError(400, "bad_contact_set", f"The contact set does not verify: {exc}")
        stored = tx.contact_set(caller.account_id)
        if stored is not None:
            if stored["note"] == note:
                return False
            if found.seq <= int(str(stored["seq"])):
                raise ApiError(409, "contact_set_stale",
                               f"A contact set with seq {stored['seq']} is stored; sign a "
                               "newer one on top of it.")
        tx.put_contact_set(caller.account_id, found.seq, note, iso(time.time()))
    return True
