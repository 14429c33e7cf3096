"""Failures of the client, each carrying the CLI exit code DESIGN.md assigns to it."""

from __future__ import annotations


class SyncError(Exception):
    """Base class of client-side failures."""

    exit_code = 3


class NetworkError(SyncError):
    """The server could not be reached or the connection broke; retrying may help."""


class ServerRefusal(SyncError):
    """The server answered with a JSON error envelope."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(f"server refused ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, from a 429/503 `Retry-After` header

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (rate limit, overload, server trouble)."""
        return self.status in (408, 425, 429) or self.status >= 500


class NotAvailable(SyncError):
    """The server holds nothing this reader may see under that id. A contact is not told whether
    the encounter does not exist or was not released to her (docs/threat-model.md): it is a
    refusal by the server either way (exit 3)."""


class UntrustedServer(SyncError):
    """The server sent a receipt, proof or checkpoint that does not verify."""

    exit_code = 1


class StateError(SyncError):
    """The local state folder is missing something (e.g. not registered yet)."""

    exit_code = 2


class OverLimit(UntrustedServer):
    """The server sent more than a bound allows (an answer, a body, a log or proof larger than
    it can honestly be); what came beyond the bound was not kept."""
