"""What every request handler needs, built once per app by create_app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from server.blobs.store import BlobStore
from server.identity.ratelimit import RateLimiter
from server.store.metadata import Store


@dataclass
class Services:
    config: dict[str, Any]
    store: Store
    blobs: BlobStore
    signing_key: str
    server_key: str  # verifier key
    fingerprint: str
    limiter: RateLimiter
    # 401s per client address (server/identity/auth.py); its own bucket so failures never eat the
    # budget of the devices behind the same address.
    auth_failures: RateLimiter = field(default_factory=lambda: RateLimiter(30))

    @property
    def server_name(self) -> str:
        return str(self.config["SERVER_NAME"])

    def now(self) -> float:
        """Unix time from config["CLOCK"] when set (tests inject time), else the real clock."""
        clock = self.config.get("CLOCK")
        return float(clock()) if clock is not None else time.time()


def services() -> Services:
    found: Services = current_app.extensions["safehold"]
    return found
