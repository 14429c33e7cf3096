"""A trusted contact's state folder (`--state DIR`): its login key and its memberships.

    DIR/                 0700
      contact.key        0600  Ed25519 signing key the contact logs in with (one per folder)
      contact.json       0600  one membership per accepted invitation: the server (its key
                               pinned on first contact), the contact id, the owner's keys and
                               terms as proven by the invitation, the safety number, the
                               webhook secret, and which identity file holds the age key

The age identity itself stays where the user keeps it (`--identity FILE`, maybe passphrase
protected); only its path and recipient are remembered. Files are written like sync/device/state.py:
secrets once with O_EXCL, the JSON atomically (temp file, fsync, rename, fsync folder).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from crypto.signing import generate_signing_key, verifier_key
from sync.device.state import StateFolder
from sync.errors import StateError

CONTACT_KEY = "contact.key"
MEMBERSHIPS = "contact.json"


@dataclass
class Membership:
    server_url: str
    server_name: str
    server_key: str
    invitation_id: str
    contact_id: str
    label: str  # what this contact calls the owner (`contact join --name`)
    account_id: str
    owner_recipient: str
    owner_device_keys: list[str]
    policy: str
    check_in_minutes: int | None
    age_recipient: str
    identity_file: str
    safety_number: str
    accepted_at: str
    webhook_secret: str | None = None
    # The largest owner's roster this contact verified (device/roster.py): a shorter or different
    # one later is a rollback or a fork.
    roster_size: int = 0
    roster_head: str = ""
    # A one-encounter share (`safehold device share`): the only encounter it may read.
    encounter: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Membership:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class ContactState:
    def __init__(self, path: Path) -> None:
        self.folder = StateFolder(Path(path))
        self.path = self.folder.path

    def signing_key(self) -> str:
        """The contact's key, made on first use and never replaced."""
        if not self.folder.has(CONTACT_KEY):
            self.folder.write_secret(CONTACT_KEY, generate_signing_key("contact") + "\n")
        return self.folder.read_secret(CONTACT_KEY).strip()

    def contact_key(self) -> str:
        return verifier_key(self.signing_key())

    def memberships(self) -> list[Membership]:
        target = self.path / MEMBERSHIPS
        if not target.exists():
            return []
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
            return [Membership.from_json(item) for item in data["memberships"]]
        except (ValueError, TypeError, KeyError) as exc:
            raise StateError(f"{target} is damaged: {exc}")

    def require_memberships(self) -> list[Membership]:
        found = self.memberships()
        if not found:
            raise StateError(f"{self.path} has joined no invitation yet; run `safehold contact "
                             f"join CODE --server URL --identity FILE --state {self.path}`")
        return found

    def save_membership(self, membership: Membership) -> None:
        kept = [m for m in self.memberships() if m.invitation_id != membership.invitation_id]
        self._write([*kept, membership])

    def _write(self, memberships: list[Membership]) -> None:
        self.folder.ensure()
        target = self.path / MEMBERSHIPS
        temp = target.with_suffix(".json.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"memberships": [asdict(m) for m in memberships]}, handle, indent=2,
                      sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
