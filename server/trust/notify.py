"""Notifications to trusted contacts: queued in the caller's transaction, sent by the worker.

`enqueue_notification` only writes an outbox row inside the transaction that made the event
(a release, an alert, a scheduled deletion), so the event and the promise to tell the contact
commit together or not at all. `safehold worker` (server/worker.py) delivers the rows.

A message says only what happened, to which encounter, when, and where the server is. It never
carries any content of the recording, nor its stream names. To a contact who may read the
encounter it also carries the log's latest signed checkpoint (which says how many log entries
there are, as the contact's own fetch would), so the contact holds a copy of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from server.store.metadata import Tx
from server.store.notify import Notification

MESSAGE_FORMAT = "safehold.notification/v1"
SIGNATURE_HEADER = "Safehold-Signature"
ID_HEADER = "Safehold-Notification-Id"

# What each kind means to a person reading an email subject line.
KIND_SUBJECTS: dict[str, str] = {
    "released": "A recording has been released to you",
    "alert": "An alert was raised",
    "deletion_scheduled": "Deletion of a recording has been requested",
    "deletion_cancelled": "A requested deletion was cancelled",
    "deletion_held": "A requested deletion was stopped by a hold",
    "encounter_deleted": "A recording has been deleted",
}
# Kinds a contact is told at most once per encounter, whoever enqueues them and however often.
ONCE_PER_ENCOUNTER = frozenset({"released"})


class UnknownKind(ValueError):
    """A notification kind this server does not know how to describe."""


def enqueue_notification(tx: Tx, *, contact_id: str, kind: str, encounter_id: str | None,
                         at: str, details: Mapping[str, Any] | None = None) -> None:
    """Queue one message for one contact in the caller's transaction.

    `released` is queued at most once per contact and encounter; repeats are ignored, so
    every path that can release (alert, check-in deadline, immediate) may call this freely.
    `details` holds small facts about the event (e.g. a deletion's due time), never content.
    """
    if kind not in KIND_SUBJECTS:
        raise UnknownKind(f"unknown notification kind {kind!r}")
    dedupe_key = f"{kind}:{contact_id}:{encounter_id}" if kind in ONCE_PER_ENCOUNTER else None
    notification = Notification(str(uuid.uuid4()), contact_id, kind, encounter_id, at,
                                dict(details or {}))
    tx.insert_notification(notification, time.time(), dedupe_key)


def message_body(notification: Notification, server_name: str, public_url: str,
                 checkpoint: str | None = None) -> dict[str, Any]:
    """The JSON a receiver gets (webhook body; also the facts in an email). `link` is the API
    URL (it needs the contact's login); `page` the page a person can open in a browser.
    `checkpoint`: the encounter log's latest signed checkpoint (C2SP signed note), given only
    for a contact the encounter is released to, so a copy the server cannot take back exists
    outside it (`safehold contact checkpoint` keeps it; a later rollback or fork is evident)."""
    link = page = public_url.rstrip("/")
    page += "/contact"
    if notification.encounter_id:
        link += f"/v1/encounters/{notification.encounter_id}"
    return {
        "format": MESSAGE_FORMAT,
        "id": notification.notification_id,
        "kind": notification.kind,
        "encounter_id": notification.encounter_id,
        "at": notification.at,
        "server": server_name,
        "link": link,
        "page": page,
        **({"details": notification.details} if notification.details else {}),
        **({"checkpoint": checkpoint} if checkpoint else {}),
    }


def encode_body(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 over "<t>.<body>">` keyed with the contact's secret."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body,
                   hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
