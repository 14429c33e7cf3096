"""Sending one notification over one channel: a signed webhook POST or an email over SMTP.

Both functions either return (the receiver accepted the message: a 2xx answer, or the SMTP
server took it for delivery with 250) or raise DeliveryFailed, which says whether trying again
could help. The worker (server/worker.py) decides when to try again.
"""

from __future__ import annotations

import ipaddress
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests

from server.trust.notify import ID_HEADER, KIND_SUBJECTS, SIGNATURE_HEADER, webhook_signature

WEBHOOK_CONNECT_TIMEOUT = 5.0
WEBHOOK_READ_TIMEOUT = 10.0
SMTP_TIMEOUT = 15.0
USER_AGENT = "Safehold-Notifier/1"
# Around the checkpoint in an email, so a client finds it in a saved or pasted message
# (sync/people/notified.py looks for the same lines).
CHECKPOINT_BEGIN = "-----BEGIN SAFEHOLD CHECKPOINT-----"
CHECKPOINT_END = "-----END SAFEHOLD CHECKPOINT-----"


class DeliveryFailed(Exception):
    """The receiver did not take the message. `permanent`: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class MailSettings:
    host: str | None
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailSettings:
        return cls(config.get("SMTP_HOST"), int(config.get("SMTP_PORT", 25)),
                   str(config.get("MAIL_FROM") or "safehold@localhost"),
                   bool(config.get("SMTP_STARTTLS", False)), config.get("SMTP_USERNAME"),
                   config.get("SMTP_PASSWORD"))


def check_webhook_target(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s), and (unless allowed) hosts that resolve to loopback,
    private, link-local or other non-public addresses, so a contact cannot make the server
    probe its own network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryFailed(f"webhook URL {url!r} is not an http(s) URL", permanent=True)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DeliveryFailed(f"cannot resolve {parts.hostname}: {exc}")
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise DeliveryFailed(f"webhook host {parts.hostname} resolves to the non-public "
                                 f"address {address}; refused", permanent=True)


def send_webhook(session: requests.Session, url: str, secret: str, body: bytes,
                 notification_id: str, timestamp: int, *, allow_private: bool) -> None:
    check_webhook_target(url, allow_private)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: notification_id,
        SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
    }
    try:
        # stream=True: only the status matters; a receiver's body is never read into memory.
        response = session.post(url, data=body, headers=headers, allow_redirects=False,
                                stream=True,
                                timeout=(WEBHOOK_CONNECT_TIMEOUT, WEBHOOK_READ_TIMEOUT))
    except requests.RequestException as exc:
        raise DeliveryFailed(f"webhook POST failed: {type(exc).__name__}: {exc}")
    response.close()
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"webhook answered HTTP {response.status_code}")


def _message_id_domain(server_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", server_name.rsplit(":", 1)[0].strip("[]")) or "safehold"


def email_message(body: Mapping[str, Any], address: str, settings: MailSettings) -> EmailMessage:
    """A plain-text email telling what happened; no content of the recording."""
    subject = KIND_SUBJECTS[str(body["kind"])]
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = address
    message["Subject"] = f"Safehold: {subject}"
    message["Message-ID"] = f"<{body['id']}@{_message_id_domain(str(body['server']))}>"
    message[ID_HEADER] = str(body["id"])
    lines = [f"{subject}.", "", f"Encounter: {body['encounter_id'] or '-'}",
             f"When: {body['at']}", f"Server: {body['server']}"]
    details = body.get("details") or {}
    if "due_at" in details:
        lines += [f"Deletion due at: {details['due_at']}",
                  "A trusted contact can stop it by placing a hold before then, "
                  "in the Safehold contact app."]
    if body.get("checkpoint"):
        lines += ["", "The server's signed record of this recording so far (keep this message: "
                  "`safehold contact checkpoint` stores it, and a later fetch then notices if "
                  "the server drops or rewrites anything):", CHECKPOINT_BEGIN,
                  str(body["checkpoint"]).rstrip("\n"), CHECKPOINT_END]
    lines += ["", f"Open it with your Safehold contact app or `safehold contact list`; "
              f"how: {body['page']}",
              "", f"Notification id: {body['id']} (every copy of this message has the same id).",
              "This message never contains any part of the recording."]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_email(message: EmailMessage, settings: MailSettings) -> None:
    if not settings.host:
        raise DeliveryFailed("no SMTP server is configured (SAFEHOLD_SMTP_HOST)")
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP delivery failed: {type(exc).__name__}: {exc}")
    if refused:
        raise DeliveryFailed(f"SMTP server refused {sorted(refused)}")
