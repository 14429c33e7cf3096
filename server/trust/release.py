"""Release policies: whether a trusted contact may read an encounter, decided at every read.

The decision (`release_of`) is a pure function of stored facts — the contact (status, policy,
when it accepted), the encounter (when it started and reached the server) and the owner's
alert/safe marks — and of the time `now`. No release waits for a background job: a check-in
deadline that passed a second ago releases at once. What is kept in the `releases` table is
only that a release was *announced* (a feed row and a notification, once per contact and
encounter); it is never consulted to decide access.

Rules (docs/protocol.md, "Release policies"):
- only an `active` contact (accepted, then confirmed by the owner's device; not revoked), of
  the encounter's account, for encounters the server first heard of at or after the contact
  accepted (contacts are chosen in advance; older recordings were not sealed to them);
- `immediate`: released from the encounter's creation;
- `on_alert`: released at the first alert on the encounter;
- `check_in`: released at the deadline = min(started_at, created_at) + N minutes unless a safe
  mark was made before the deadline; an alert also releases it at once.
An alert or a release is never taken back; to stop a contact reading, revoke the contact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crypto.descriptor import parse_time
from server.identity.auth import iso
from server.store.contacts import ACTIVE, ALERT, SAFE, Contact, Mark
from server.store.encounters import Encounter
from server.store.metadata import Tx
from server.trust.notify import enqueue_notification

IMMEDIATE, ON_ALERT, CHECK_IN = "immediate", "on_alert", "check_in"


@dataclass(frozen=True)
class Release:
    at: datetime
    reason: str  # immediate | alert | check_in


# -- the decision (pure) ----------------------------------------------------------------------


def check_in_deadline(encounter: Encounter, minutes: int) -> datetime:
    """N minutes after the encounter began; a phone clock set late cannot postpone it."""
    began = min(parse_time(encounter.started_at), parse_time(encounter.created_at))
    return began + timedelta(minutes=minutes)


def release_of(contact: Contact, encounter: Encounter, marks: Sequence[Mark]) -> Release | None:
    """When the encounter is (or will be, if nothing changes) released to the contact."""
    if contact.status != ACTIVE or contact.account_id != encounter.account_id:
        return None
    created = parse_time(encounter.created_at)
    if created < parse_time(contact.accepted_at):
        return None
    candidates: list[Release] = []
    if contact.policy == IMMEDIATE:
        candidates.append(Release(created, IMMEDIATE))
    alerts = [parse_time(m.at) for m in marks if m.kind == ALERT]
    if alerts and contact.policy in (ON_ALERT, CHECK_IN):
        candidates.append(Release(min(alerts), "alert"))
    if contact.policy == CHECK_IN and contact.check_in_minutes is not None:
        deadline = check_in_deadline(encounter, contact.check_in_minutes)
        if not any(m.kind == SAFE and parse_time(m.at) < deadline for m in marks):
            candidates.append(Release(deadline, CHECK_IN))
    return min(candidates, key=lambda r: r.at) if candidates else None


def released(contact: Contact, encounter: Encounter, marks: Sequence[Mark],
             now: datetime) -> Release | None:
    """The release if it has happened by `now`; None otherwise."""
    found = release_of(contact, encounter, marks)
    return found if found is not None and found.at <= now else None


def moment(unix_time: float) -> datetime:
    return datetime.fromtimestamp(unix_time, UTC)


# -- reading the facts ------------------------------------------------------------------------


def encounter_release(tx: Tx, contact: Contact, encounter: Encounter,
                      now: float) -> Release | None:
    scoped = tx.shared_encounter_of_contact(contact.contact_id)
    if scoped is not None:  # a one-encounter share (trust/shares.py), never a policy
        from server.trust.shares import share_release

        found = share_release(contact, encounter, scoped)
        return Release(*found) if found is not None else None
    return released(contact, encounter, tx.marks_of(encounter.encounter_id), moment(now))


def released_encounters(tx: Tx, contact: Contact, now: float) -> list[tuple[Encounter, Release]]:
    """Every encounter released to the contact by `now`, oldest first."""
    if contact.status != ACTIVE:
        return []
    found = []
    for encounter in tx.encounters_of(contact.account_id):
        release = encounter_release(tx, contact, encounter, now)
        if release is not None:
            found.append((encounter, release))
    return found


# -- announcing releases: one feed row and one notification per contact and encounter -------


def announce_releases(tx: Tx, now: float, contacts: Iterable[Contact],
                      encounters: Sequence[Encounter] | None = None) -> int:
    """Announce what is released by `now` and was not announced yet; returns how many.

    Call it in the write transaction of the event that may release (encounter created, alert,
    contact confirmed or changed) or, for check-in deadlines, from the worker and on a
    contact's reads. Idempotent: the `releases` row makes each announcement happen once.
    """
    count = 0
    stamp = iso(now)
    for contact in contacts:
        if contact.status != ACTIVE:
            continue
        done = tx.announced_encounters(contact.contact_id)
        scope = encounters if encounters is not None else tx.encounters_of(contact.account_id)
        for encounter in scope:
            if encounter.encounter_id in done:
                continue
            release = encounter_release(tx, contact, encounter, now)
            if release is None:
                continue
            _announce(tx, contact, encounter, release, stamp)
            count += 1
    return count


def _announce(tx: Tx, contact: Contact, encounter: Encounter, release: Release,
              stamp: str) -> None:
    released_at = iso(release.at.timestamp())
    tx.insert_release(contact.contact_id, encounter.encounter_id, released_at, release.reason,
                      stamp)
    tx.insert_contact_change(contact.account_id, contact.contact_id, "released", stamp,
                             encounter.encounter_id)
    enqueue_notification(tx, contact_id=contact.contact_id, kind="released",
                         encounter_id=encounter.encounter_id, at=released_at,
                         details={"reason": release.reason})


def notify_passed_check_ins(tx: Tx, now: float) -> int:
    """For `safehold worker`: announce every check-in release whose deadline has passed."""
    return announce_releases(tx, now, tx.active_contacts(CHECK_IN))
