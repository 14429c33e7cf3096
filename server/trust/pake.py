"""Short-code invitations: the server only allocates nameplates and relays PAKE messages.

It cannot check a guess (it never sees the code's words). What it enforces is that a mailbox
is claimed once: the first contact message is the only one ever relayed, so anyone — the
server included — gets one online guess per code. The owner's device checks the contact's
confirmation and reports the outcome: `done` (its confirmation and the sealed invitation are
relayed back) or `burned` (a wrong guess; the contact is told, the code is void).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from crypto.descriptor import format_time, parse_time
from server.context import Services
from server.errors import ApiError, not_found
from server.identity.auth import Caller, iso
from server.store.metadata import Tx
from server.store.pake import BURNED, CLAIMED, DONE, OPEN, PakeMailbox
from server.trust.release import moment

MIN_LIFETIME = 60
MAX_LIFETIME = 24 * 3600
# Nameplates are drawn at random below a bound that grows with how many are live, so they stay
# short to read aloud (3 digits) and are not handed out in an order others could follow.
NAMEPLATE_BOUNDS = (1000, 10000, 100000, 1000000)


def _nameplate(tx: Tx, now: str) -> str:
    taken = tx.taken_nameplates(now)
    for bound in NAMEPLATE_BOUNDS:
        if len(taken) < bound // 2:
            while True:
                candidate = str(secrets.randbelow(bound - 1) + 1)
                if candidate not in taken:
                    return candidate
    raise ApiError(503, "nameplates_exhausted", "Too many short codes are waiting; try "
                   "again later or use `--long`.")


def allocate(svc: Services, caller: Caller, body: dict[str, Any]) -> PakeMailbox:
    now = svc.now()
    lifetime = body["lifetime_seconds"]
    with svc.store.write() as tx:
        box = PakeMailbox(
            pake_id=secrets.token_urlsafe(16), nameplate=_nameplate(tx, iso(now)),
            account_id=caller.account_id, device_id=str(caller.device_id),
            owner_message=body["owner_message"], contact_message=None, contact_confirm=None,
            owner_confirm=None, sealed=None, status=OPEN, created_at=iso(now),
            expires_at=format_time(moment(now) + timedelta(seconds=lifetime)),
            claimed_at=None, closed_at=None)
        tx.insert_pake_mailbox(box)
    return box


def _expired(box: PakeMailbox, now: float) -> bool:
    return parse_time(box.expires_at) <= moment(now)


def by_nameplate(tx: Tx, nameplate: str, now: float) -> PakeMailbox:
    """The mailbox a contact reaches with the code's number (404 none, 410 expired)."""
    box = tx.live_pake_mailbox(nameplate, iso(now))
    if box is None:
        raise not_found("There is no such short code; check the number.")
    if _expired(box, now) and box.status in (OPEN, CLAIMED):
        raise ApiError(410, "code_expired", "This code has expired; ask for a new one.")
    return box


def claim(svc: Services, nameplate: str, body: dict[str, Any]) -> PakeMailbox:
    """Relay the contact's message and confirmation; only the first claim is ever relayed."""
    now = svc.now()
    with svc.store.write() as tx:
        box = by_nameplate(tx, nameplate, now)
        same = (box.contact_message, box.contact_confirm) == (body["contact_message"],
                                                              body["contact_confirm"])
        if box.status == BURNED:
            raise ApiError(409, "code_burned", "This code was used with a wrong guess and is "
                           "void; the owner was told. Ask for a new one.")
        if box.status != OPEN and not same:
            raise ApiError(409, "code_used", "This code was already used; ask for a new one.")
        if box.status == OPEN:
            tx.update_pake_mailbox(box.pake_id, contact_message=body["contact_message"],
                                   contact_confirm=body["contact_confirm"], status=CLAIMED,
                                   claimed_at=iso(now))
            tx.insert_change(box.account_id, "pake_claimed", iso(now))
        found = tx.pake_mailbox(box.pake_id)
    assert found is not None
    return found


def owned(tx: Tx, caller: Caller, pake_id: str) -> PakeMailbox:
    box = tx.pake_mailbox(pake_id)
    if box is None or box.account_id != caller.account_id:
        raise not_found("There is no such short code (or it is not yours).")
    return box


def reply(svc: Services, caller: Caller, pake_id: str, body: dict[str, Any]) -> PakeMailbox:
    """The owner's device says how the contact's confirmation checked out. Idempotent."""
    now = iso(svc.now())
    outcome = body["outcome"]
    with svc.store.write() as tx:
        box = owned(tx, caller, pake_id)
        if box.status == OPEN and outcome == DONE:
            raise ApiError(409, "code_not_claimed", "Nobody has used this code yet.")
        if box.status in (DONE, BURNED):
            if box.status != outcome or (outcome == DONE and (box.owner_confirm, box.sealed)
                                         != (body.get("owner_confirm"), body.get("sealed"))):
                raise ApiError(409, "code_closed", f"This code is already {box.status}.")
            return box
        if outcome == DONE:
            if not body.get("owner_confirm") or not body.get("sealed"):
                raise ApiError(400, "bad_reply", "A done reply carries owner_confirm and "
                               "sealed.")
            tx.update_pake_mailbox(pake_id, status=DONE, owner_confirm=body["owner_confirm"],
                                   sealed=body["sealed"], closed_at=now)
        else:
            tx.update_pake_mailbox(pake_id, status=BURNED, closed_at=now)
        found = tx.pake_mailbox(pake_id)
    assert found is not None
    return found


def owner_view(box: PakeMailbox, now: float) -> dict[str, Any]:
    """`expired` is shown for a code nobody finished using in time (it is not stored)."""
    status = "expired" if box.status in (OPEN, CLAIMED) and _expired(box, now) else box.status
    return {"pake_id": box.pake_id, "nameplate": box.nameplate, "status": status,
            "owner_message": box.owner_message, "contact_message": box.contact_message,
            "contact_confirm": box.contact_confirm, "expires_at": box.expires_at,
            "created_at": box.created_at, "claimed_at": box.claimed_at,
            "closed_at": box.closed_at}


def contact_view(box: PakeMailbox) -> dict[str, Any]:
    return {"nameplate": box.nameplate, "status": box.status,
            "owner_message": box.owner_message, "owner_confirm": box.owner_confirm,
            "sealed": box.sealed, "expires_at": box.expires_at}
