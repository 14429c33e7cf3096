"""The checkpoints a trusted contact has seen, per encounter: evidence kept outside the server.

    DIR/checkpoints.json  0600  {"encounters": {ENCOUNTER: [{"note", "size", "root", "chunks",
                                 "source", "seen_at"}, ...]}}

Every signed checkpoint a contact sees (each `safehold fetch`, each notification fed in with
`safehold contact checkpoint`) is kept until a later fetch proves, from the leaves it holds, that
it is a prefix of a larger one; then only the larger one stays. A log the server serves later
must extend every kept checkpoint: one that is smaller (a database backup restored) or whose
leaves do not hash to a kept root (a rewritten log) is named, and the command fails with exit 1.
A server cannot erase this copy: it is the contact's, written atomically (temp file, fsync,
rename, fsync folder).
"""

from __future__ import annotations

import base64
import bisect
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crypto.checkpoint import Checkpoint, encounter_origin, open_checkpoint
from crypto.errors import CryptoError
from crypto.merkle import verify_consistency
from sync.errors import ServerRefusal, StateError, SyncError, UntrustedServer

if TYPE_CHECKING:
    from sync.fetching.plan import Plan

KNOWN_CHECKPOINTS = "checkpoints.json"
MAX_KEPT = 64  # per encounter; unproven notes beyond this are dropped, smallest first


@dataclass(frozen=True)
class Known:
    note: str  # the server's signed note, as it was seen
    size: int
    root: str  # base64
    chunks: int | None  # chunk leaves the contact saw under it (None: from a notification)
    source: str  # "fetch" or "notification"
    seen_at: str

    @classmethod
    def of(cls, checkpoint: Checkpoint, note: str, chunks: int | None, source: str,
           seen_at: str) -> Known:
        return cls(note, checkpoint.size, base64.b64encode(checkpoint.root).decode("ascii"),
                   chunks, source, seen_at)


@dataclass(frozen=True)
class Contradiction:
    """A log that does not extend a checkpoint the contact holds."""

    encounter: str
    kind: str  # "rolled back" or "forked"
    held: Known
    served: int  # the size of the log the server serves now
    gone: int | None  # chunks the contact had seen that the served log no longer holds
    kept_in: str = KNOWN_CHECKPOINTS  # where the held checkpoint is kept (the proof)

    def describe(self) -> str:
        if self.kind == "rolled back":
            lost = (f"{self.gone} chunk(s) you had seen are gone from it" if self.gone is not None
                    else f"{self.held.size - self.served} log leaves are gone from it")
        else:
            lost = ("it is another log with the same name, so none of the "
                    f"{self.held.chunks if self.held.chunks is not None else 'chunks'} "
                    "you had seen can be trusted to be in it")
        when = f" at {self.held.seen_at}" if self.held.seen_at else ""
        return (f"EVIDENCE TAMPERING: encounter {self.encounter}: the server's log was "
                f"{self.kind} (you hold its signed checkpoint of size {self.held.size}, from "
                f"a {self.held.source}{when}; the server now serves size "
                f"{self.served}); {lost}. Keep {self.kept_in} in your state folder: it "
                "proves this")


class LogContradicted(UntrustedServer):
    """Exit 1: the server serves a log that does not extend what this contact saw."""

    def __init__(self, found: Contradiction) -> None:
        self.found = found
        super().__init__(found.describe())


def contradiction(encounter: str, held: list[Known], served: int,
                  root_of_prefix: Callable[[int], bytes],
                  chunks_below: Callable[[int], int] | None = None) -> Contradiction | None:
    """The first kept checkpoint the served log (size `served`, `root_of_prefix(k)` = the root
    of its first k leaves) fails to extend, largest first; None when it extends them all."""
    for known in sorted(held, key=lambda k: -k.size):
        if known.size > served:
            gone = None
            if known.chunks is not None and chunks_below is not None:
                gone = max(0, known.chunks - chunks_below(known.size))
            return Contradiction(encounter, "rolled back", known, served, gone)
        if known.size and base64.b64encode(root_of_prefix(known.size)).decode() != known.root:
            return Contradiction(encounter, "forked", known, served, None)
    return None


class KnownCheckpoints:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / KNOWN_CHECKPOINTS

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            encounters = data["encounters"]
            if not isinstance(encounters, dict):
                raise TypeError("encounters is not an object")
            return encounters
        except (ValueError, TypeError, KeyError) as exc:
            raise StateError(f"{self.path} is damaged ({exc}); it holds the checkpoints you "
                             "saw: restore it from a backup rather than deleting it")

    def held(self, encounter: str) -> list[Known]:
        try:
            return [Known(**item) for item in self._load().get(encounter, [])]
        except TypeError as exc:
            raise StateError(f"{self.path} is damaged ({exc})")

    def largest(self, encounter: str) -> Known | None:
        held = self.held(encounter)
        return max(held, key=lambda k: k.size) if held else None

    def keep(self, encounter: str, known: Known, proven_prefixes: bool = False) -> None:
        """Add `known`; with `proven_prefixes` (a fetch checked every kept one against its
        leaves) the smaller ones are dropped, as `known` now stands for them."""
        data = self._load()
        kept = [] if proven_prefixes else [Known(**k) for k in data.get(encounter, [])]
        if not any(k.size == known.size and k.root == known.root for k in kept):
            kept.append(known)
        kept.sort(key=lambda k: k.size)
        data[encounter] = [asdict(k) for k in kept[-MAX_KEPT:]]
        self._write(data)

    def _write(self, data: dict[str, list[dict[str, Any]]]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = self.path.with_suffix(".json.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"encounters": data}, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def open_for(note: str, server_key: str, server_name: str, encounter: str) -> Checkpoint:
    """The note verified as a checkpoint of `encounter`'s log under the pinned server key."""
    try:
        return open_checkpoint(note, server_key,
                               expected_origin=encounter_origin(server_name, encounter))
    except CryptoError as exc:
        raise UntrustedServer(f"that is no checkpoint of encounter {encounter}'s log signed "
                              f"by the server key ({exc})")


def check_fetched(folder: Path, encounter: str, plan: Plan, seen_at: str) -> None:
    """Before a contact's fetch writes anything: the served log (its leaves already checked
    against its signed root) must extend every checkpoint the contact kept; then its
    checkpoint is kept in their place. LogContradicted (exit 1) otherwise, nothing kept."""
    known = KnownCheckpoints(folder)
    indexes = sorted(p.index for p in plan.planned)
    found = contradiction(encounter, known.held(encounter), plan.checkpoint.size,
                          lambda k: plan.tree.root(0, k),
                          lambda k: bisect.bisect_left(indexes, k))
    if found is not None:
        raise LogContradicted(found)
    known.keep(encounter, Known.of(plan.checkpoint, plan.checkpoint_note, len(indexes), "fetch",
                                   seen_at), proven_prefixes=True)


def check_device_fetched(verified: dict[int, bytes], encounter: str, plan: Plan) -> None:
    """The owner's device fetching its own encounter: the same comparison, against the
    checkpoints this device verified in receipts (its outbox, sync/upload/rollback.py). Only the
    current ones: those retired by a recorded finding (re-anchoring) stand for a log the device
    already named as tampered, and would make every later fetch fail. Nothing is written here."""
    held = [Known("", size, base64.b64encode(root).decode("ascii"), None,
                  "receipt this device verified", "") for size, root in verified.items()]
    found = contradiction(encounter, held, plan.checkpoint.size, lambda k: plan.tree.root(0, k))
    if found is not None:
        raise LogContradicted(replace(found, kept_in="outbox.db"))


def origin_parts(note: str) -> tuple[str, str]:
    """(server name, encounter id) a note's origin line claims, unverified."""
    origin = note.split("\n", 1)[0]
    server, sep, encounter = origin.rpartition("/safehold/encounter/")
    if not sep or not server:
        raise StateError(f"that is no checkpoint of a Safehold encounter's log (its first "
                         f"line is {origin[:80]!r})")
    return server, encounter


Prove = Callable[[str, int, int], list[bytes]]  # the server's consistency proof (encounter, m, n)


@dataclass
class Kept:
    encounter: str
    new: Known
    largest_before: Known | None
    unchecked: str | None = None  # why it could not be compared with the others now


def keep_notified(folder: Path, note: str, server_key: str, server_name: str,
                  seen_at: str, prove: Prove | None = None) -> Kept:
    """Keep a checkpoint a notification carried. Verified against the pinned key; then it must
    be consistent with every checkpoint held: one of the same size must have the same root, one
    of another size is compared through the server's consistency proof (`prove`). A proof that
    fails, or a same-size root that differs, is a fork: LogContradicted, and it is not kept. A
    server that refuses the proof (its log no longer reaches the larger one) rolled back or
    forked: it is kept, as the evidence, and UntrustedServer (exit 1) is raised after.
    Unreachable: kept, and the next fetch compares."""
    _server, encounter = origin_parts(note)
    checkpoint = open_for(note, server_key, server_name, encounter)
    known = KnownCheckpoints(folder)
    held = known.held(encounter)
    new = Known.of(checkpoint, note, None, "notification", seen_at)
    kept = Kept(encounter, new, max(held, key=lambda k: k.size) if held else None)
    unproven: UntrustedServer | None = None
    for other in held:
        if other.size == new.size:
            if other.root != new.root:
                raise LogContradicted(Contradiction(encounter, "forked", other, new.size, None))
            continue
        if not other.size or prove is None or kept.unchecked:
            continue
        small, large = sorted((other, new), key=lambda k: k.size)
        try:
            verify_consistency(small.size, large.size, base64.b64decode(small.root),
                               base64.b64decode(large.root),
                               prove(encounter, small.size, large.size))
        except CryptoError:
            raise LogContradicted(Contradiction(encounter, "forked", other, new.size, None))
        except ServerRefusal as exc:
            if exc.code != "out_of_range":  # not now (busy) or not to you (revoked)
                kept.unchecked = str(exc)
            else:  # the log no longer reaches the larger size the server itself signed
                unproven = UntrustedServer(
                    f"EVIDENCE TAMPERING: encounter {encounter}: the server signed a checkpoint "
                    f"of size {large.size} but cannot prove that it extends the one of size "
                    f"{small.size} ({exc.message}): its log was rolled back or forked. Both "
                    f"are kept in {KNOWN_CHECKPOINTS}; `safehold fetch` names what is gone")
        except SyncError as exc:  # unreachable
            kept.unchecked = str(exc)
    known.keep(encounter, new)
    if unproven is not None:
        raise unproven
    return kept
