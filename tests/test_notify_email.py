"""Email notifications reach a real SMTP server (aiosmtpd on loopback), without content, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from contactkit import add_contact
from helpers import free_port, registered_device
from notifykit import AppServer, SmtpSink

SECRET_MEDIA = b"plate number XY-123 and the officer's words"


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def server(tmp_path: Path, smtp_port: int) -> Iterator[AppServer]:
    app = AppServer(tmp_path / "data", {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port,
                                        "MAIL_FROM": "alerts@safehold.example.org"}).start()
    yield app
    app.stop()


def body_text(message: object) -> str:
    payload = message.get_payload(decode=True)  # type: ignore[attr-defined]
    return bytes(payload).decode("utf-8")


def test_alert_and_release_are_emailed(server: AppServer, smtp_port: int) -> None:
    sink = SmtpSink(smtp_port).start()
    try:
        owner = registered_device(server.url, server.name)
        add_contact(owner, "on_alert", now=server.clock.now, notify_email="ana@example.org")
        encounter = owner.new_encounter()
        owner.upload(encounter, "audio", 0, payload=SECRET_MEDIA)
        assert owner.call("POST", f"/v1/encounters/{encounter}/alert").status_code == 201
        server.worker().run_once()
    finally:
        sink.stop()
    assert len(sink.messages) == 2
    subjects = set()
    for sender, recipients, message in sink.messages:
        assert sender == "alerts@safehold.example.org"
        assert recipients == ["ana@example.org"]
        assert message["To"] == "ana@example.org"
        notification_id = message["Safehold-Notification-Id"]
        assert message["Message-ID"] == f"<{notification_id}@127.0.0.1>"
        text = body_text(message)
        assert encounter in text and f"{server.url}/contact" in text
        assert "/v1/" not in text  # an API URL answers a browser with raw 401 JSON
        assert notification_id in text
        assert "XY-123" not in message.as_string()
        subjects.add(message["Subject"])
    assert subjects == {"Safehold: A recording has been released to you",
                        "Safehold: An alert was raised"}
    # What a person clicking the link sees: a page, not an error envelope.
    page = requests.get(f"{server.url}/contact", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Invitation code" in page.text  # the contacts' web page (issue 12)


def test_smtp_server_down_gets_it_later_exactly_once(server: AppServer, smtp_port: int) -> None:
    owner = registered_device(server.url, server.name)
    add_contact(owner, "immediate", now=server.clock.now, notify_email="bo@example.org")
    encounter = owner.new_encounter()
    worker = server.worker()
    assert worker.run_once().failed == 1  # nothing listens on the SMTP port yet
    sink = SmtpSink(smtp_port).start()
    try:
        worker.run_once()
        assert sink.messages == []  # not due before the backoff has passed
        server.clock.advance(3600)
        assert worker.run_once().delivered == 1
        for _ in range(4):
            server.clock.advance(24 * 3600)
            worker.run_once()
    finally:
        sink.stop()
    [(_, recipients, message)] = sink.messages
    assert recipients == ["bo@example.org"]
    assert encounter in body_text(message)


def test_mail_waits_for_the_operator_to_configure_smtp(tmp_path: Path, smtp_port: int) -> None:
    app = AppServer(tmp_path / "data").start()  # no SAFEHOLD_SMTP_HOST yet
    sink = SmtpSink(smtp_port).start()
    try:
        owner = registered_device(app.url, app.name)
        contact = add_contact(owner, "immediate", now=app.clock.now,
                              notify_email="cy@example.org")
        encounter = owner.new_encounter()
        assert app.worker().run_once().failed == 1
        with app.worker().store.read() as tx:
            [notification] = tx.notifications_for(str(contact.contact_id))
            [delivery] = tx.deliveries_of(notification.notification_id)
        assert delivery.state == "pending" and "SAFEHOLD_SMTP_HOST" in str(delivery.last_error)
        app.clock.advance(3600)
        configured = app.worker(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port)
        assert configured.run_once().delivered == 1
    finally:
        sink.stop()
        app.stop()
    [(_, _, message)] = sink.messages
    assert encounter in body_text(message)
