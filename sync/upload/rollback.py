"""Rollback, fork and dropped-chunk detection on the recording device (issue 10).

The device keeps every checkpoint it verified in its outbox (sync/upload/receipts.py). Before each
`device sync` and `device record` it asks the server for the current checkpoint of every
encounter it holds acknowledged chunks in, and compares it with the largest one it holds:

- a smaller served checkpoint means the log shrank (a database backup restored, leaf rows
  deleted): the acknowledged chunks at leaf indexes the served log no longer reaches are gone;
- the same size with another root, a smaller size whose root differs from the one the device
  verified at that size, or a larger size whose consistency proof fails, is a fork;
- a consistent log is then checked against what the server says it holds: an acknowledged chunk
  the server no longer lists (its row deleted, its leaf perhaps kept) was dropped.

Each finding is recorded for good (sync/upload/findings.py): a shrunk or forked log re-anchors
the encounter on the served checkpoint and every acknowledged chunk of it is queued again (the
outbox keeps bodies after acknowledgement), so the lost ones are sent back and the ones the
server still holds are proven again in the log it keeps now; a dropped chunk is simply sent
again. The command still ends with exit 1: a re-upload repairs the server's copy, never the fact
that it was tampered with. Later syncs settle (exit 0) and `safehold device status` lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crypto.checkpoint import encounter_origin, open_checkpoint
from crypto.errors import CryptoError
from crypto.merkle import verify_consistency
from sync.errors import ServerRefusal, UntrustedServer
from sync.upload.findings import DROPPED, FORKED, ROLLED_BACK, Finding, record
from sync.upload.outbox import ACKNOWLEDGED, ChunkKey, Outbox

LatestCheckpoint = Callable[[str], dict[str, Any]]
Consistency = Callable[[str, int, int], list[bytes]]
Holdings = Callable[[str], dict[str, Any]]  # the encounter's page: streams -> {"seqs": [...]}


class RollbackDetected(UntrustedServer):
    """Exit 1: the server dropped or rewrote acknowledged evidence."""

    def __init__(self, found: list[Finding]) -> None:
        self.found = found
        more = f" (and {len(found) - 1} more finding(s))" if len(found) > 1 else ""
        super().__init__(f"EVIDENCE TAMPERING: {found[0].describe()}{more}; recorded on this "
                         "device (`safehold device status`); keep its state folder: its "
                         "receipts and checkpoints prove it")


def check_logs(outbox: Outbox, server_key: str, server_name: str,
               latest: LatestCheckpoint, consistency: Consistency,
               holdings: Holdings | None = None) -> list[int]:
    """Compare each encounter's largest held checkpoint with the served one (and, when they
    agree, the acknowledged chunks with those the server holds); record what differs. Returns
    the ids of the findings recorded now."""
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
        kind = _compare(encounter, known, size, root, consistency)
        if kind is not None:
            finding = record(outbox, encounter, kind, held, size, note, root,
                             _lost(outbox, keys, size, kind), keys)
        elif holdings is not None:
            finding = _dropped(outbox, encounter, keys, held, holdings)
        else:
            finding = None
        if finding is not None:
            found.append(finding)
    return found


def _compare(encounter: str, known: dict[int, bytes], size: int, root: bytes,
             consistency: Consistency) -> str | None:
    held = max(known)
    if size in known and root != known[size]:
        return FORKED
    if size < held:
        return ROLLED_BACK  # a true prefix when the device verified that size (a backup)
    if size == held:
        return None
    try:
        verify_consistency(held, size, known[held], root, consistency(encounter, held, size))
    except CryptoError:
        return FORKED
    except ServerRefusal as exc:
        if exc.retryable:
            raise
        return FORKED  # it signs a larger log but will not prove that it extends ours
    return None


def _dropped(outbox: Outbox, encounter: str, keys: list[ChunkKey], size: int,
             holdings: Holdings) -> int | None:
    """Acknowledged chunks the server does not list any more, although its log is intact."""
    streams = holdings(encounter).get("streams") or {}
    held = {(str(name), int(seq)) for name, info in streams.items()
            for seq in (info or {}).get("seqs") or []}
    gone = sorted((k for k in keys if (k.stream, k.seq) not in held),
                  key=lambda k: (k.stream, k.seq))
    if not gone:
        return None
    return record(outbox, encounter, DROPPED, size, size, None, b"", gone, gone)


def _acknowledged(outbox: Outbox) -> dict[str, list[ChunkKey]]:
    by_encounter: dict[str, list[ChunkKey]] = {}
    for row in outbox.chunks():
        if row["state"] == ACKNOWLEDGED:
            key = ChunkKey(str(row["encounter"]), str(row["stream"]), int(row["seq"]))
            by_encounter.setdefault(key.encounter, []).append(key)
    return by_encounter


def _lost(outbox: Outbox, keys: list[ChunkKey], served_size: int, kind: str) -> list[ChunkKey]:
    """Acknowledged chunks the served log cannot hold: past its end after a rollback; every
    one after a fork (which leaves were rewritten is unknown)."""
    lost = []
    for key in keys:
        receipt = outbox.receipt(key)
        if kind == FORKED or receipt is None or int(receipt["leaf_index"]) >= served_size:
            lost.append(key)
    return lost
