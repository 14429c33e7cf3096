"""Contacts a recording can reach: pin the contacts who joined since, before sealing to them.

A contact who accepted an invitation after the owner last ran `safehold device contacts` is not
pinned yet, so nothing recorded would be sealed to her - and when the recording is released,
she could not open it. `record` and `sync` therefore look for such contacts themselves. The
check needs no person: the proof is recomputed from the invitation secret kept on the phone
(sync/people/owner.py), so a key the server substituted is refused exactly as `device contacts`
refuses it. Only invitations still waiting are looked at, so a device with none sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.api import ApiClient
from sync.device.state import StateFolder
from sync.errors import SyncError
from sync.people.book import PINNED, REFUSED, WAITING
from sync.people.owner import contact_book, refresh_contacts


@dataclass(frozen=True)
class NewContact:
    name: str
    safety_number: str | None
    problem: str | None = None


@dataclass
class ContactCheck:
    pinned: list[NewContact] = field(default_factory=list)  # verified and pinned just now
    refused: list[NewContact] = field(default_factory=list)  # substituted keys found just now
    error: str | None = None  # the check could not be made (no network): try again later

    @property
    def changed(self) -> bool:
        return bool(self.pinned or self.refused)


def waiting_invitations(state: StateFolder) -> int:
    book = contact_book(state)
    try:
        return sum(inv.state == WAITING for inv in book.invitations())
    finally:
        book.close()


def pin_new_contacts(state: StateFolder, api: ApiClient) -> ContactCheck:
    """Verify and pin the contacts who accepted since the last look; report what changed."""
    check = ContactCheck()
    book = contact_book(state)
    try:
        before = {inv.invitation_id: inv.state for inv in book.invitations()}
        if WAITING not in before.values():
            return check
        try:
            refresh_contacts(book, api)
        except SyncError as exc:
            check.error = str(exc)
            return check
        for inv in book.invitations():
            if before.get(inv.invitation_id) != WAITING or inv.state == WAITING:
                continue
            if inv.state == PINNED and inv.terms.encounter is None:  # shares: cli/device_share
                check.pinned.append(NewContact(inv.name, inv.safety_number))
            elif inv.state == REFUSED:
                check.refused.append(NewContact(inv.name, None, inv.problem))
    finally:
        book.close()
    return check
