"""Direct uploads: the chunk body goes straight to S3 on a presigned PUT, then the API commits it.

Used only when the server advertises `direct_uploads` in GET /v1/server. Every step that fails
for a reason the proxied PUT would not share (the server turned it off, S3 unreachable or
refusing, the object gone before the commit) answers None, and the caller sends the body through
the API instead: both routes end in the same receipt. Refusals about the chunk itself (bad
descriptor, chunk_exists, …) are raised, as the proxied PUT would raise them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import requests

from sync.errors import ServerRefusal
from sync.upload.pacing import PacedBody

# After S3 failed, this many seconds of proxied uploads before trying it again, so a phone does
# not pay a connect timeout on every chunk while S3 is unreachable from where it is.
S3_PAUSE_SECONDS = 60.0
# Refusals after which the proxied PUT may still succeed.
FALL_BACK_CODES = {"direct_uploads_off", "upload_missing", "storage_unavailable"}


class Client(Protocol):
    @property
    def session(self) -> requests.Session: ...
    @property
    def timeout(self) -> tuple[float, float]: ...

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]: ...


class DirectRoute:
    """Whether to try S3 first, learnt from server info and from failures."""

    def __init__(self) -> None:
        self.offered = False
        self.paused_until = 0.0

    def usable(self) -> bool:
        return self.offered and time.monotonic() >= self.paused_until

    def pause(self) -> None:
        self.paused_until = time.monotonic() + S3_PAUSE_SECONDS

    def put(self, client: Client, path: str, body: bytes | PacedBody,
            headers: Mapping[str, str]) -> dict[str, Any] | None:
        """The receipt, or None when the caller should fall back to the proxied PUT."""
        try:
            presigned = client.json("POST", path + "/direct", auth=True, headers=headers)
            if not self._to_s3(client, presigned, body):
                self.pause()
                return None
            return client.json("POST", path + "/commit", auth=True, headers=headers)
        except ServerRefusal as refusal:
            if refusal.code == "direct_uploads_off":
                self.offered = False
            if refusal.code in FALL_BACK_CODES:
                return None
            raise

    @staticmethod
    def _to_s3(client: Client, presigned: Mapping[str, Any],
               body: bytes | PacedBody) -> bool:
        # requests sets Content-Length from the body; the pinned one is the same number.
        sent = {k: str(v) for k, v in dict(presigned.get("headers") or {}).items()
                if k.lower() != "content-length"}
        try:
            response = client.session.request("PUT", str(presigned["url"]), data=body,
                                              headers=sent, timeout=client.timeout)
            response.close()
        except (requests.RequestException, KeyError):
            return False
        # 412: the object is already there (an earlier attempt's); the commit judges its bytes.
        return response.status_code in (200, 201, 204, 412)
