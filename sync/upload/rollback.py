"""Rollback and fork detection on the recording device (issue 10).

The device keeps every checkpoint it verified in its outbox (sync/upload/receipts.py). Before each
`device sync` and `device record` it asks the server for the current checkpoint of every
encounter it holds acknowledged chunks in, and compares it with the largest one it holds:

- a smaller served checkpoint means the log shrank (a database backup restored, leaf rows
  deleted): the acknowledged chunks at leaf indexes the served log no longer reaches are gone;
- the same size with another root, or a larger size whose consistency proof fails, is a fork.

Either way the device queues again the bodies it still holds (the outbox keeps a chunk's body
after acknowledgement) so the evidence goes back to the server, and the command still ends
with exit 1: a re-upload repairs the server's copy, never the fact that it was tampered with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crypto.checkpoint import encounter_origin, open_checkpoint
from crypto.errors import CryptoError
from crypto.merkle import verify_consistency
from sync.errors import ServerRefusal, UntrustedServer
from sync.upload.outbox import ACKNOWLEDGED, ChunkKey, Outbox

LatestCheckpoint = Callable[[str], dict[str, Any]]
Consistency = Callable[[str, int, int], list[bytes]]


@dataclass(frozen=True)
class Tampering:
    encounter: str
    kind: str  # "rolled back" or "forked"
    held: int  # size of the largest checkpoint the device verified
    served: int  # size of the checkpoint the server serves now
    missing: int  # acknowledged chunks the served log no longer covers
    requeued: int  # of those, bodies queued again for upload

    def describe(self) -> str:
        lost = (f"{self.missing} acknowledged chunk(s) are no longer in it"
                if self.kind == "rolled back" else
                f"none of its {self.missing} acknowledged chunk(s) can be trusted to be in it")
        return (f"encounter {self.encounter}: the server's log was {self.kind} (this device "
                f"verified a checkpoint of size {self.held}, the server now serves size "
                f"{self.served}); {lost}, {self.requeued} queued again for upload")


class RollbackDetected(UntrustedServer):
    """Exit 1: the server dropped or rewrote acknowledged evidence."""

    def __init__(self, found: list[Tampering]) -> None:
        self.found = found
        more = f" (and {len(found) - 1} more encounter(s))" if len(found) > 1 else ""
        super().__init__(f"EVIDENCE TAMPERING: {found[0].describe()}{more}; keep this "
                         "device's state folder: its receipts and checkpoints prove it")


def check_logs(outbox: Outbox, server_key: str, server_name: str,
               latest: LatestCheckpoint, consistency: Consistency) -> list[Tampering]:
    """Compare each encounter's largest held checkpoint with the served one; requeue losses."""
    found = []
    for encounter, keys in _acknowledged(outbox).items():
        known = outbox.checkpoints(encounter)
        if not known:
            continue
        held = max(known)
        try:
            note: str | None = str(latest(encounter)["checkpoint"])
        except ServerRefusal as exc:
            if exc.status == 410:
                continue  # deleted: a delayed, announced deletion (docs/protocol.md), kept as a
                # tombstone; not a rollback
            if exc.status != 404:
                raise
            note = None  # unknown to the server: a backup from before the encounter began
        if note is None:
            size, root = 0, b""
        else:
            try:
                served = open_checkpoint(note, server_key,
                                         expected_origin=encounter_origin(server_name, encounter))
            except CryptoError as exc:
                raise UntrustedServer(f"encounter {encounter}: the server's current checkpoint "
                                      f"does not verify: {exc}") from exc
            size, root = served.size, served.root
        kind = _compare(encounter, held, known[held], size, root, consistency)
        if kind is None:
            continue
        lost = _lost(outbox, keys, size, kind)
        outbox.requeue_acknowledged(lost)
        if note is None:
            outbox.mark_encounter_missing(encounter)  # the upload pass creates it again
        found.append(Tampering(encounter, kind, held, size, len(lost), len(lost)))
    return found


def _compare(encounter: str, held: int, held_root: bytes, size: int, root: bytes,
             consistency: Consistency) -> str | None:
    if size < held:
        return "rolled back"
    if size == held:
        return None if root == held_root else "forked"
    try:
        verify_consistency(held, size, held_root, root, consistency(encounter, held, size))
    except CryptoError:
        return "forked"
    except ServerRefusal as exc:
        if exc.retryable:
            raise
        return "forked"  # it signs a larger log but will not prove that it extends ours
    return None


def _acknowledged(outbox: Outbox) -> dict[str, list[ChunkKey]]:
    by_encounter: dict[str, list[ChunkKey]] = {}
    for row in outbox.chunks():
        if row["state"] == ACKNOWLEDGED:
            key = ChunkKey(str(row["encounter"]), str(row["stream"]), int(row["seq"]))
            by_encounter.setdefault(key.encounter, []).append(key)
    return by_encounter


def _lost(outbox: Outbox, keys: list[ChunkKey], served_size: int, kind: str) -> list[ChunkKey]:
    """Acknowledged chunks the served log cannot hold: past its end after a rollback; every
    one after a fork (which leaves were rewritten is unknown, and a re-upload of a chunk the
    server still holds is an idempotent success)."""
    lost = []
    for key in keys:
        receipt = outbox.receipt(key)
        if kind == "forked" or receipt is None or int(receipt["leaf_index"]) >= served_size:
            lost.append(key)
    return lost
