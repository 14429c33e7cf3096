"""The device's state folder (`--state DIR`): keys, settings and the outbox.

    DIR/                 0700 (an existing folder open to others is tightened, with a warning)
      device.key         0600  Ed25519 signing key of this device (signed-note key encoding)
      recovery.key       0600  the owner's own age identity; its recipient gets a stanza in
                               every chunk so the owner can always open their own recordings
      settings.json            server URL, server name, the server key pinned at registration,
                               account and device ids, recovery recipient
      outbox.db          0600  sync/upload/outbox.py (its -wal/-shm files too)
      upload.lock        0600  held (flock) by the one process that uploads for all; its pid

Secrets are written once, with O_EXCL, and never overwritten; settings are replaced atomically
(temp file, fsync, rename, fsync folder), so a crash leaves the old or the new file, never half.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sync.errors import StateError
from sync.upload.outbox import Outbox

DEVICE_KEY = "device.key"
RECOVERY_KEY = "recovery.key"
SETTINGS = "settings.json"
OUTBOX = "outbox.db"
log = logging.getLogger("safehold.state")


@dataclass
class Settings:
    server_url: str
    server_name: str
    server_key: str  # pinned at registration; receipts must verify against it
    server_fingerprint: str
    account_id: str
    device_id: str
    device_key: str  # this device's verifier key (public)
    recovery_recipient: str
    registered: bool = False  # False while the registration request has not succeeded yet
    # The device roster (sync/device/roster.py): the pinned genesis hash, and the largest roster
    # verified so far (a smaller or different one later is a rollback or a fork).
    roster_genesis: str = ""
    roster_size: int = 0
    roster_head: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class StateFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def ensure(self) -> None:
        """Create the folder 0700, or tighten an existing one that others could read: its
        outbox holds an invitation's secret until the invitee accepts."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.path, 0o700)
            log.warning("state folder %s was open to other users (mode %o); changed it to 700",
                        self.path, mode)

    # -- secrets ------------------------------------------------------------------------------
    def write_secret(self, name: str, text: str) -> None:
        """Create a 0600 file that must not exist yet (a key is never silently replaced)."""
        self.ensure()
        target = self.path / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(self.path)

    def read_secret(self, name: str) -> str:
        target = self.path / name
        if not target.exists():
            raise StateError(f"{target} is missing; register this device first "
                             f"(safehold device register --server URL --state {self.path})")
        return target.read_text(encoding="utf-8")

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    def device_signing_key(self) -> str:
        return self.read_secret(DEVICE_KEY).strip()

    def recovery_identity(self) -> str:
        lines = [ln.strip() for ln in self.read_secret(RECOVERY_KEY).splitlines()]
        keys = [ln for ln in lines if ln and not ln.startswith("#")]
        if len(keys) != 1:
            raise StateError(f"{self.path / RECOVERY_KEY} should hold exactly one age identity")
        return keys[0]

    # -- settings -----------------------------------------------------------------------------
    def load_settings(self) -> Settings | None:
        target = self.path / SETTINGS
        if not target.exists():
            return None
        try:
            return Settings.from_json(json.loads(target.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise StateError(f"{target} is damaged: {exc}")

    def save_settings(self, settings: Settings) -> None:
        self.ensure()
        target = self.path / SETTINGS
        temp = target.with_suffix(".json.tmp")
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(asdict(settings), handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        _fsync_dir(self.path)

    def require_registered(self) -> Settings:
        settings = self.load_settings()
        if settings is None or not settings.registered:
            raise StateError(f"no registered device in {self.path}; run "
                             f"`safehold device register --server URL --state {self.path}` first")
        return settings

    def outbox(self) -> Outbox:
        self.ensure()
        return Outbox(self.path / OUTBOX)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
