"""`safehold worker`: releases by check-in deadline, due deletions, and notification delivery.

Each pass (every SAFEHOLD_WORKER_INTERVAL seconds, sooner when there is more to do):

1. check-in deadlines that have passed: a `released` notification per contact and encounter
   (enqueue_notification keeps that to exactly once; the release itself never waits for this
   job, the API decides it at every read);
2. deletions whose delay has run out without a hold: blobs removed, a tombstone kept;
3. new notifications expanded into one delivery per channel of the contact;
4. deliveries that are due: sent; marked delivered only after a 2xx (webhook) or a 250 (SMTP);
   otherwise retried with exponential backoff and jitter, until NOTIFY_MAX_ATTEMPTS.

Delivery is at least once: a worker that dies after sending but before recording success sends
again when its lease runs out. Every message carries its notification id so receivers drop
duplicates. Several workers may run at once: deliveries are leased in a write transaction.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from server.blobs.store import BlobStore, make_blob_store
from server.identity.auth import iso
from server.store.metadata import Store, open_store
from server.store.notify import ContactChannels, Delivery, Notification
from server.trust.delivery import (
    DeliveryFailed,
    MailSettings,
    email_message,
    send_email,
    send_webhook,
)
from server.trust.notify import encode_body, message_body

log = logging.getLogger("safehold.worker")
BATCH = 50


@dataclass
class PassReport:
    released: int = 0
    deleted: int = 0
    expanded: int = 0
    delivered: int = 0
    failed: int = 0

    @property
    def busy(self) -> bool:
        return self.delivered + self.failed >= BATCH or self.expanded >= BATCH


@dataclass
class Worker:
    store: Store
    blobs: BlobStore
    config: Mapping[str, Any]
    clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = random.random
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def mail(self) -> MailSettings:
        return MailSettings.from_config(self.config)

    def run_once(self) -> PassReport:
        report = PassReport()
        now = self.clock()
        report.released = release_passed_check_ins(self.store, now)
        report.deleted = carry_out_due_deletions(self.store, self.blobs, now)
        report.expanded = self.expand_notifications(now)
        for _ in range(BATCH):
            delivery = self.claim(self.clock())
            if delivery is None:
                break
            if self.attempt(delivery):
                report.delivered += 1
            else:
                report.failed += 1
        return report

    def run(self, stop: threading.Event) -> None:
        interval = float(self.config["WORKER_INTERVAL"])
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:  # one bad pass must not end the worker; the next pass retries
                log.exception("worker pass failed")
                report = PassReport()
            if report != PassReport():
                log.info("worker pass: %s", report)
            if not report.busy:
                stop.wait(interval)

    # -- notifications ------------------------------------------------------------------------
    def expand_notifications(self, now: float) -> int:
        with self.store.write() as tx:
            pending = tx.unexpanded_notifications(BATCH)
            for notification in pending:
                tx.expand_notification(notification.notification_id,
                                       self.targets(tx.contact_channels(notification.contact_id)),
                                       now)
        return len(pending)

    def targets(self, channels: ContactChannels | None) -> list[tuple[str, str]]:
        if channels is None or not channels.active:
            return []
        found: list[tuple[str, str]] = []
        if channels.webhook_url and channels.webhook_secret:
            found.append(("webhook", channels.webhook_url))
        if channels.email:
            # Queued even without an SMTP server: it goes out once the operator sets one.
            found.append(("email", channels.email))
        return found

    def claim(self, now: float) -> Delivery | None:
        """One due delivery, leased to this worker. One at a time, so that a lease only has to
        outlast one send (webhook and SMTP time out well within the default 120 s)."""
        lease = float(self.config["NOTIFY_LEASE_SECONDS"])
        with self.store.write() as tx:
            found = tx.claim_due_deliveries(now, now + lease, 1)
        return found[0] if found else None

    def attempt(self, delivery: Delivery) -> bool:
        """Send once; record the outcome. True when the receiver accepted it."""
        with self.store.read() as tx:
            notification = tx.notification(delivery.notification_id)
            channels = (tx.contact_channels(notification.contact_id)
                        if notification is not None else None)
        try:
            if notification is None or channels is None or not channels.active:
                raise DeliveryFailed("the contact was revoked", permanent=True)
            self.send(delivery, notification, channels)
        except DeliveryFailed as failure:
            self.record_failure(delivery, failure)
            return False
        with self.store.write() as tx:
            tx.mark_delivered(delivery, iso(self.clock()))
        return True

    def send(self, delivery: Delivery, notification: Notification,
             channels: ContactChannels) -> None:
        body = message_body(notification, str(self.config["SERVER_NAME"]),
                            str(self.config["PUBLIC_URL"]), self.checkpoint_for(notification))
        if delivery.channel == "webhook":
            if not channels.webhook_secret:
                raise DeliveryFailed("the contact has no webhook secret", permanent=True)
            send_webhook(self.session, delivery.target, channels.webhook_secret,
                         encode_body(body), notification.notification_id, int(self.clock()),
                         allow_private=bool(self.config.get("WEBHOOK_ALLOW_PRIVATE")))
        elif delivery.channel == "email":
            send_email(email_message(body, delivery.target, self.mail), self.mail)
        else:
            raise DeliveryFailed(f"unknown channel {delivery.channel!r}", permanent=True)

    def checkpoint_for(self, notification: Notification) -> str | None:
        """The encounter's latest signed checkpoint, read when the message is sent (the
        latest there is), if the encounter is released to the contact; else None."""
        from server.trust.release import encounter_release

        if notification.encounter_id is None:
            return None
        with self.store.read() as tx:
            contact = tx.contact(notification.contact_id)
            encounter = tx.encounter(notification.encounter_id)
            if contact is None or encounter is None or encounter_release(
                    tx, contact, encounter, self.clock()) is None:
                return None
            found = tx.checkpoint(encounter.encounter_id)
        return found.note if found is not None else None

    def record_failure(self, delivery: Delivery, failure: DeliveryFailed) -> None:
        attempts = delivery.attempts + 1
        give_up = failure.permanent or attempts >= int(self.config["NOTIFY_MAX_ATTEMPTS"])
        now = self.clock()
        next_at = now + self.backoff(attempts)
        with self.store.write() as tx:
            tx.mark_attempt_failed(delivery, str(failure), next_at, give_up)
        level = logging.WARNING if give_up else logging.INFO
        log.log(level, "%s delivery of %s failed (attempt %d%s): %s", delivery.channel,
                delivery.notification_id, attempts, ", giving up" if give_up else "", failure)

    def backoff(self, attempts: int) -> float:
        """Seconds until the next try: doubling from the base up to the cap, with jitter
        (between half and all of it) so receivers coming back are not hit all at once."""
        base = float(self.config["NOTIFY_RETRY_BASE_SECONDS"])
        cap = float(self.config["NOTIFY_RETRY_MAX_SECONDS"])
        delay = min(cap, base * 2 ** min(attempts - 1, 32))
        return delay * (0.5 + self.jitter() / 2)


def release_passed_check_ins(store: Store, now: float) -> int:
    from server.trust.release import notify_passed_check_ins  # the release rules live there

    with store.write() as tx:
        return notify_passed_check_ins(tx, now)


def carry_out_due_deletions(store: Store, blobs: BlobStore, now: float) -> int:
    from server.evidence.deletion import carry_out_due

    return carry_out_due(store, blobs, now)


def build_worker(config: Mapping[str, Any]) -> Worker:
    store = open_store(config)
    store.migrate()
    clock = config.get("CLOCK") or time.time
    return Worker(store, make_blob_store(config), config, clock)


def main(environ: Mapping[str, str] = os.environ) -> int:
    from server.config import load_config

    worker = build_worker(load_config(environ))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("worker started (interval %ss)", worker.config["WORKER_INTERVAL"])
    worker.run(stop)
    log.info("worker stopped")
    return 0
