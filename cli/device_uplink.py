"""What `device record` and `device sync` tell the user about the network and the contacts.

- Honest waiting: within moments of a failed attempt (the uploader reports every failure at
  once; a process that waits for another one's uploads reads it from the outbox every 0.1 s),
  one line says the server is unreachable, how many chunks are safe in the outbox, and how long
  the process keeps retrying and how to change that (SAFEHOLD_SYNC_PATIENCE).
- Contacts: new contacts who joined since the last look are verified and pinned (their safety
  number is shown to compare); a recording sealed to nobody but the owner's recovery key says so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from cli.common import CliError
from sync.api import ApiClient
from sync.device.state import StateFolder
from sync.people.reach import ContactCheck, pin_new_contacts
from sync.upload.outbox import Outbox
from sync.upload.uplink import Status

DEFAULT_PATIENCE = 30.0


def patience() -> float:
    value = os.environ.get("SAFEHOLD_SYNC_PATIENCE")
    try:
        return float(value) if value else DEFAULT_PATIENCE
    except ValueError:
        raise CliError(f"SAFEHOLD_SYNC_PATIENCE must be a number of seconds, got {value!r}")


def say(line: str) -> None:
    """One line on stderr, on its own line even while a progress line is shown."""
    sys.stderr.write(("\n" if sys.stderr.isatty() else "") + f"safehold: {line}\n")
    sys.stderr.flush()


class WaitingNotice:
    """Called with each change of the uploader's status (from whichever process uploads)."""

    def __init__(self, outbox: Outbox, recording: Callable[[], bool]) -> None:
        self.outbox = outbox
        self.recording = recording
        self.patience = patience()
        self.told = False

    def __call__(self, status: Status) -> None:
        if status.waiting_since is None:
            if self.told:
                say("the server is reachable again; uploading")
            self.told = False
            return
        self.told = True
        queued = self.outbox.remaining()
        during = "while recording goes on, then " if self.recording() else ""
        say(f"the server is unreachable ({status.error}); {queued} chunk(s) are safe in the "
            f"outbox. Retrying {during}for up to {self.patience:g} s without progress (set "
            "SAFEHOLD_SYNC_PATIENCE=SECONDS to change that); `safehold device sync` sends them "
            "later.")


def check_contacts(state: StateFolder, api: ApiClient) -> ContactCheck:
    """Pin the contacts who joined since; say who was pinned or refused."""
    check = pin_new_contacts(state, api)
    for contact in check.pinned:
        say(f"new trusted contact {contact.name} verified and pinned; what you record from now "
            f"on is sealed to them too. Compare this safety number with theirs: "
            f"{contact.safety_number}")
    for contact in check.refused:
        say(f"REFUSED {contact.name}: {contact.problem}. Invite them again and compare "
            "safety numbers.")
    return check


def warn_unreachable(encounter: str, alone: int, total: int) -> None:
    """The recording (or part of it) can be opened by no trusted contact."""
    if alone == 0:
        return
    if alone >= total:
        say(f"no trusted contact can open encounter {encounter}: it is sealed only to your own "
            "recovery key. Invite one with `safehold device invite`; once they joined, what "
            "you record is sealed to them too.")
    else:
        say(f"{alone} of {total} chunk(s) of encounter {encounter} were sealed before a trusted "
            "contact was pinned: only your own recovery key opens those.")
