"""Tampering a device found, kept for good in its outbox (issue 10).

When sync/upload/rollback.py finds that the server dropped or rewrote acknowledged evidence, one
transaction here:

1. writes a finding row (encounter, what happened, the sizes, how many acknowledged chunks the
   server no longer has, the signed checkpoints on both sides) that is never deleted, so
   `safehold device status` and a report can cite it long after;
2. for a log that shrank or forked, moves the checkpoints the device had verified to
   retired_checkpoints (their signed notes are the proof) and re-anchors the encounter on the
   checkpoint the server serves now (none at all if the server forgot the encounter), so the
   receipts of the re-sent chunks verify against the log the server keeps from here on;
3. queues the affected chunks again (the outbox keeps bodies after acknowledgement).

Without step 2 the re-sent chunks could never settle: their receipts are for a log that does
not extend the one the device verified, and every later sync would say "forked" again. The
finding itself is what must not be forgotten, and it is not: re-anchoring only stops the device
repeating it. A finding is "settled" once every chunk of its encounter is acknowledged again.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sync.upload.outbox import ACKNOWLEDGED, QUEUED, ChunkKey, Outbox, now_rfc3339

ANCHOR_EPOCH = "anchor_epoch"  # outbox meta: changes whenever an encounter is re-anchored
ROLLED_BACK, FORKED, DROPPED = "rolled back", "forked", "dropped"


@dataclass(frozen=True)
class Finding:
    id: int
    encounter: str
    kind: str  # ROLLED_BACK, FORKED or DROPPED
    held: int  # size of the largest checkpoint the device had verified
    served: int  # size of the checkpoint the server served when it was found
    missing: int  # acknowledged chunks the server no longer has (or cannot be trusted to have)
    requeued: int  # chunks queued again to be sent and proven on the server's log
    first_missing: str | None  # e.g. "audio/3"
    found_at: str
    settled_at: str | None
    left: int  # chunks of the encounter not acknowledged again yet

    def describe(self) -> str:
        return f"encounter {self.encounter}: {self.what()}; {self.aftermath()}"

    def what(self) -> str:
        if self.kind == DROPPED:
            first = f" (first: {self.first_missing})" if self.first_missing else ""
            return (f"the server no longer holds {self.missing} acknowledged chunk(s) that its "
                    f"signed log (size {self.served}) still lists{first}")
        lost = (f"{self.missing} acknowledged chunk(s) are no longer in it"
                if self.kind == ROLLED_BACK else
                f"none of its {self.missing} acknowledged chunk(s) can be trusted to be in it")
        return (f"the server's log was {self.kind} (this device verified a checkpoint of size "
                f"{self.held}, the server now serves size {self.served}); {lost}")

    def aftermath(self) -> str:
        if self.left:
            return (f"{self.left} chunk(s) still to send again from this device: run "
                    "`safehold device sync`")
        return (f"this device sent them again and all {self.requeued} are acknowledged in the "
                "server's log now")


def record(outbox: Outbox, encounter: str, kind: str, held: int, served: int,
           served_note: str | None, served_root: bytes, missing: list[ChunkKey],
           requeue: list[ChunkKey]) -> int | None:
    """Store the finding, re-anchor (a shrunk or forked log) and queue `requeue` again, all in
    one transaction. None if another process of this device recorded it first."""
    with outbox.transaction() as db:
        if not _still_as_found(db, encounter, kind, held, requeue):
            return None
        held_note = _note_of(db, encounter, held)
        cur = db.execute(
            "INSERT INTO findings (encounter, kind, held_size, served_size, missing, requeued,"
            " first_missing, held_checkpoint, served_checkpoint, found_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [encounter, kind, held, served, len(missing), len(requeue),
             _slot(missing[0]) if missing else None, held_note, served_note, now_rfc3339()])
        finding = int(cur.lastrowid or 0)
        if kind != DROPPED:
            _reanchor(db, finding, encounter, served, served_root, served_note)
        for key in requeue:
            db.execute("UPDATE chunks SET state = ?, next_try = 0 WHERE encounter = ? AND"
                       " stream = ? AND seq = ? AND state = ?",
                       [QUEUED, key.encounter, key.stream, key.seq, ACKNOWLEDGED])
        return finding


def _still_as_found(db: Any, encounter: str, kind: str, held: int,
                    requeue: list[ChunkKey]) -> bool:
    """Another process (a `record` beside a `sync`) may have handled the same finding."""
    if kind == DROPPED:
        return any(db.execute("SELECT 1 FROM chunks WHERE encounter = ? AND stream = ? AND"
                              " seq = ? AND state = ?",
                              [k.encounter, k.stream, k.seq, ACKNOWLEDGED]).fetchone()
                   for k in requeue)
    top = db.execute("SELECT MAX(size) FROM checkpoints WHERE encounter = ?",
                     [encounter]).fetchone()[0]
    return top is not None and int(top) == held


def _note_of(db: Any, encounter: str, size: int) -> str | None:
    row = db.execute("SELECT note FROM checkpoints WHERE encounter = ? AND size = ?",
                     [encounter, size]).fetchone()
    return str(row[0]) if row and row[0] else None


def _reanchor(db: Any, finding: int, encounter: str, served: int, served_root: bytes,
              served_note: str | None) -> None:
    db.execute("INSERT INTO retired_checkpoints (finding, encounter, size, root, note)"
               " SELECT ?, encounter, size, root, note FROM checkpoints WHERE encounter = ?",
               [finding, encounter])
    db.execute("DELETE FROM checkpoints WHERE encounter = ?", [encounter])
    if served_note is None:  # the server forgot the encounter: the next upload creates it
        db.execute("UPDATE encounters SET on_server = 0 WHERE id = ?", [encounter])
    else:
        db.execute("INSERT INTO checkpoints (encounter, size, root, note) VALUES (?, ?, ?, ?)",
                   [encounter, served, base64.b64encode(served_root).decode(), served_note])
    epoch = db.execute("SELECT value FROM meta WHERE key = ?", [ANCHOR_EPOCH]).fetchone()
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
               [ANCHOR_EPOCH, str(int(epoch[0]) + 1 if epoch else 1)])


def settle(outbox: Outbox) -> None:
    """Findings whose encounter has every chunk acknowledged again are settled (kept)."""
    with outbox.transaction() as db:
        db.execute("UPDATE findings SET settled_at = ? WHERE settled_at IS NULL AND NOT EXISTS"
                   " (SELECT 1 FROM chunks c WHERE c.encounter = findings.encounter AND"
                   " c.state != ?)", [now_rfc3339(), ACKNOWLEDGED])


def listed(outbox: Outbox, ids: list[int] | None = None) -> list[Finding]:
    """Every finding (or those of `ids`), oldest first."""
    with outbox.transaction() as db:
        rows = list(db.query(
            "SELECT f.*, (SELECT COUNT(*) FROM chunks c WHERE c.encounter = f.encounter AND"
            " c.state != ?) AS left_count FROM findings f ORDER BY f.id", [ACKNOWLEDGED]))
    return [_finding(r) for r in rows if ids is None or int(r["id"]) in ids]


def anchor_epoch(outbox: Outbox) -> str:
    return outbox.get_meta(ANCHOR_EPOCH) or "0"


def _finding(row: dict[str, Any]) -> Finding:
    return Finding(int(row["id"]), str(row["encounter"]), str(row["kind"]),
                   int(row["held_size"]), int(row["served_size"]), int(row["missing"]),
                   int(row["requeued"]), row["first_missing"], str(row["found_at"]),
                   row["settled_at"], int(row["left_count"]))


def _slot(key: ChunkKey) -> str:
    return f"{key.stream}/{key.seq}"
