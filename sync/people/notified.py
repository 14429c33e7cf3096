"""The signed checkpoint a notification carries (server/trust/notify.py), found in what a
contact saved of it: the webhook's JSON body, the email (as a file or pasted text), or the
checkpoint note alone. `safehold contact checkpoint` keeps it (sync/people/known_checkpoints.py)
and `safehold verify --checkpoint` checks a bundle against it.
"""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage

from sync.errors import StateError

BEGIN = "-----BEGIN SAFEHOLD CHECKPOINT-----"
END = "-----END SAFEHOLD CHECKPOINT-----"
MAX_INPUT = 1 << 20  # a notification is a few KiB


def checkpoint_text(raw: bytes) -> str:
    """The checkpoint note in `raw`; StateError (exit 2) when there is none."""
    if len(raw) > MAX_INPUT:
        raise StateError(f"that is {len(raw)} bytes, not a notification or a checkpoint "
                         f"(at most {MAX_INPUT})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError("that is not text: give the notification's JSON body, its email, or "
                         "the checkpoint note")
    found = _from_json(text) or _from_email(raw) or _between_markers(text)
    if found is None:
        if text.count("\n") >= 4 and "\n\n" in text and "/safehold/encounter/" in text:
            return text if text.endswith("\n") else text + "\n"  # the note alone
        raise StateError("no Safehold checkpoint found in it: give the notification's JSON "
                         "body, its email, or the checkpoint note")
    return found


def _from_json(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    note = body.get("checkpoint") if isinstance(body, dict) else None
    return note if isinstance(note, str) else None


def _from_email(raw: bytes) -> str | None:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or message.get("Safehold-Notification-Id") is None:
        return None
    part = message.get_body(preferencelist=("plain",))
    return _between_markers(str(part.get_content())) if part is not None else None


def _between_markers(text: str) -> str | None:
    text = text.replace("\r\n", "\n")
    start = text.find(BEGIN)
    end = text.find(END, start + 1)
    if start < 0 or end < 0:
        return None
    return text[start + len(BEGIN):end].lstrip("\n")
