"""Device rosters on the server: store and serve what the account's devices signed.

The server holds no device key, so it cannot extend a roster; it checks every statement before
appending it anyway (chained to the stored head, signed by a device already in the roster, the
device it adds registered in the account), so an honest server never stores a chain its clients
would refuse. Clients do not rely on these checks: they verify the chain from its pinned start.
"""

from __future__ import annotations

import time

from crypto.errors import CryptoError
from crypto.roster import RosterError, RosterStatement, open_roster, statement_hash
from crypto.signing import split_note
from server.context import Services
from server.errors import ApiError, not_found
from server.identity.auth import CONTACT, Caller, iso
from server.store.contacts import ACTIVE

ROSTER_CHANGE = "roster_added"


def roster_notes(svc: Services, caller: Caller) -> list[str]:
    """The roster of the caller's account (a contact: of the owner who invited it, only while
    the contact is active; pending and revoked contacts are shown nothing, as everywhere)."""
    with svc.store.read() as tx:
        if caller.kind == CONTACT:
            contact = tx.contact(caller.contact_id)
            if contact is None or contact.status != ACTIVE:
                raise not_found()
        return tx.roster_notes(caller.account_id)


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_roster_statement", message)


def _claimed_seq(note: str) -> int:
    try:
        return RosterStatement.parse(split_note(note)[0]).seq
    except CryptoError as exc:
        raise _bad(f"The roster statement is malformed: {exc}")


def append_statement(svc: Services, caller: Caller, note: str) -> tuple[int, str, bool]:
    """Append a signed statement to the caller's roster: (seq, hash, created)."""
    account_id = caller.account_id
    seq = _claimed_seq(note)
    with svc.store.write() as tx:
        notes = tx.roster_notes(account_id)
        if seq < len(notes):
            if notes[seq] == note:
                return seq, statement_hash(note), False
            raise ApiError(409, "roster_conflict",
                           f"Roster statement {seq} already exists; fetch the roster and sign "
                           "the addition again on top of its head.")
        try:
            roster = open_roster([*notes, note], svc.server_name, account=account_id)
        except RosterError as exc:
            raise _bad(f"The roster statement does not extend this account's roster: {exc}")
        statement = roster.statements[-1]
        device = tx.device(statement.device_id)
        if device is None or device.account_id != account_id \
                or device.device_key != statement.device_key:
            raise _bad(f"Device {statement.device_id} with that key is not registered in this "
                       "account; register it first (POST /v1/devices).")
        if seq == 0:
            account = tx.account(account_id)
            if statement.device_id != caller.device_id or account is None \
                    or statement.recovery != account.recovery_recipient:
                raise _bad("A roster's genesis names the calling device and the account's "
                           "recovery recipient.")
        now = iso(time.time())
        tx.insert_roster_statement(account_id, seq, note, statement_hash(note), now)
        tx.insert_change(account_id, ROSTER_CHANGE, now)
    return seq, statement_hash(note), True


def post_link_request(svc: Services, caller: Caller, proof: str) -> bool:
    """Keep a new device's link proof for the account's other devices; True if new."""
    with svc.store.write() as tx:
        existing = tx.link_request(caller.device_id)
        if existing is not None:
            if existing["proof"] == proof:
                return False
            raise ApiError(409, "link_request_exists",
                           "This device already asked to be linked with another proof.")
        tx.insert_link_request(caller.device_id, caller.account_id, proof, iso(time.time()))
    return True


def link_requests(svc: Services, caller: Caller) -> list[dict[str, str]]:
    """Link requests of devices that are not in the roster yet."""
    with svc.store.read() as tx:
        notes = tx.roster_notes(caller.account_id)
        requests = tx.link_requests(caller.account_id)
    in_roster = {_device_line(note) for note in notes}
    return [r for r in requests if r["device_key"] not in in_roster]


def _device_line(note: str) -> str:
    for line in note.split("\n"):
        if line.startswith("device "):
            return line[len("device "):]
    return ""


def contact_set(svc: Services, caller: Caller) -> str | None:
    """The latest contact set a device of the caller's account signed, if any."""
    with svc.store.read() as tx:
        row = tx.contact_set(caller.account_id)
    return None if row is None else str(row["note"])
