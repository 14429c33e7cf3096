"""A bundle checked against checkpoints its reader holds from elsewhere (`verify --state DIR`,
`verify --checkpoint FILE`): a bundle fetched from a server that was rolled back or forked
after the reader saw a larger log verifies on its own, but not against what the reader saw.

Each held checkpoint must be signed by the bundle's server key for this encounter's log, and
the bundle's leaves must extend it: its size at most the bundle's, the root of that many of the
bundle's leaves equal to its root (sync/people/known_checkpoints.py `contradiction`). One
exception: a checkpoint from the state folder that the contact saw only after the bundle was
fetched (manifest `fetched_at`) may rightly be larger, an older bundle being a part of a log
that grew; that it is a part cannot be checked without the larger log's leaves, so verify warns.
A checkpoint given with --checkpoint FILE is always required to be extended.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sync.bundle.files import CHECKPOINT, MANIFEST, BundleReader
from sync.errors import UntrustedServer
from sync.fetching.proofs import SubtreeRoots
from sync.people.known_checkpoints import Known, KnownCheckpoints, contradiction, open_for
from sync.verifying.findings import ERROR, WARNING, Problem
from sync.verifying.log import CHUNK_KIND, load_log
from sync.verifying.verify import Verification


def held_checkpoints(state: Path | None, files: list[tuple[str, str]],
                     encounter: str) -> list[tuple[str, Known | str]]:
    """(where it came from, the held checkpoint or its unverified note text)."""
    found: list[tuple[str, Known | str]] = []
    if state is not None:
        found += [(f"{state}/checkpoints.json", k) for k in KnownCheckpoints(state).held(encounter)]
    found += [(name, text) for name, text in files]
    return found


def check_against_held(reader: BundleReader, result: Verification, state: Path | None,
                       files: list[tuple[str, str]]) -> int:
    """Add an ERROR to `result` for each held checkpoint the bundle's log fails to extend;
    the number of checkpoints checked."""
    trust = result.trust
    if trust is None or result.checkpoint is None or trust.server_key is None:
        return 0  # the bundle already fails on its own
    view = load_log(reader, trust, [])
    if not view.root_ok:
        return 0
    tree = SubtreeRoots(view.leaf_hashes)
    manifest = reader.read_json(MANIFEST)
    fetched_at = manifest.get("fetched_at") if isinstance(manifest, dict) else None
    chunk_at = [i for i, leaf in enumerate(view.leaves)
                if leaf.startswith(CHUNK_KIND.encode() + b"\n")]
    checked = 0
    for where, held in held_checkpoints(state, files, trust.encounter):
        note = held.note if isinstance(held, Known) else held
        try:
            cp = open_for(note, trust.server_key, trust.server_name, trust.encounter)
        except UntrustedServer as exc:  # another server's key, another log, not a note
            result.problems.append(Problem(ERROR, "held_checkpoint", f"{where}: {exc} (the "
                                           "bundle's server key)", CHECKPOINT))
            continue
        known = held if isinstance(held, Known) else Known.of(cp, note, None, "file", where)
        checked += 1
        if isinstance(held, Known) and cp.size > len(view.leaves) \
                and not _fetched_after(fetched_at, held.seen_at):
            result.problems.append(Problem(
                WARNING, "held_checkpoint_newer", f"{where}: you hold a checkpoint of size "
                f"{cp.size}, seen after this bundle of {len(view.leaves)} log leaves was "
                "fetched; that the bundle is a part of it cannot be checked offline: fetch "
                "again to check", CHECKPOINT))
            continue
        found = contradiction(trust.encounter, [known], len(view.leaves),
                              lambda k: tree.root(0, k),
                              lambda k: sum(1 for i in chunk_at if i < k))
        if found is not None:
            code = "log_rolled_back" if found.kind == "rolled back" else "log_forked"
            result.problems.append(Problem(ERROR, code, f"{where}: {found.describe()}",
                                           CHECKPOINT))
    return checked


def _fetched_after(fetched_at: object, seen_at: str) -> bool:
    """Whether the bundle was fetched after the contact saw the held checkpoint: then a
    smaller log in it is a server serving less than it had signed (an unreadable time in the
    manifest counts as after, the stricter reading)."""
    try:
        return datetime.fromisoformat(str(fetched_at)) >= datetime.fromisoformat(seen_at)
    except ValueError:
        return True
