"""Collecting cosignatures of encounter checkpoints from the configured witnesses.

Best effort and bounded: uploads never wait for a witness. After a chunk is committed (and its
receipt already on its way), one background thread per server process asks the witnesses about
the encounter's latest checkpoint; bursts are coalesced per encounter, so a recording costs a
round per witness whenever the thread gets to it, not one per chunk, and a witness sees the log
grow even if nobody reads it (a later restore of a backup is then evident to it). When someone
reads an encounter's latest checkpoint, every configured witness that has not yet cosigned it is
asked once, all in parallel, each with SAFEHOLD_WITNESS_TIMEOUT_SECONDS; a witness that failed
is not asked again about the same checkpoint for SAFEHOLD_WITNESS_RETRY_SECONDS (per process),
so a dead witness costs one timeout, not one per read.

The server believes a witness holds the largest size it cosigned for the encounter (from the
`cosignatures` table). On 409 the witness says what it really holds; the server retries once
from there if it can prove consistency, and otherwise gives up: a witness that has cosigned a
larger or different log than the server now shows (a restored backup, a fork) will never cosign
this one, which is the point.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from crypto.checkpoint import Checkpoint
from crypto.cosignature import add_signature_lines, format_add_checkpoint, verify_cosignatures
from crypto.errors import CryptoError
from crypto.merkle import consistency_proof
from crypto.signing import split_note
from server.context import Services
from server.identity.auth import iso
from server.store.log import StoredCheckpoint

log = logging.getLogger("safehold.witnesses")
MAX_RESPONSE_BYTES = 16 * 1024
_failures: dict[tuple[str, str, int], float] = {}
_failures_lock = threading.Lock()


@dataclass(frozen=True)
class Target:
    url: str
    vkey: str


class WitnessRefused(Exception):
    """The witness answered but did not cosign (the message says why)."""


def cosigned_note(svc: Services, encounter_id: str, found: StoredCheckpoint) -> str:
    """The checkpoint note with every stored cosignature line for exactly this checkpoint."""
    with svc.store.read() as tx:
        lines = tx.cosignature_lines(encounter_id, found.tree_size, found.root)
    return add_signature_lines(found.note, lines) if lines else found.note


def collect(svc: Services, encounter_id: str, found: StoredCheckpoint) -> None:
    """Ask the witnesses that have not cosigned `found` yet; store what they return."""
    targets = [Target(url, vkey) for url, vkey in svc.config.get("WITNESSES", ())]
    if not targets:
        return
    with svc.store.read() as tx:
        have = set(tx.cosignature_lines(encounter_id, found.tree_size, found.root))
        sizes = {t.vkey: tx.witness_size(encounter_id, t.vkey) for t in targets}
    pending = [t for t in targets if not _has_line(have, t) and not _backing_off(svc, t, found)]
    if not pending:
        return
    with ThreadPoolExecutor(max_workers=len(pending)) as pool:
        results = list(pool.map(lambda t: _ask(svc, encounter_id, found, t, sizes[t.vkey]),
                                pending))
    now = iso(svc.now())
    with svc.store.write() as tx:
        for target, line in zip(pending, results, strict=True):
            if line is not None:
                tx.insert_cosignature(encounter_id, found.tree_size, found.root, target.vkey,
                                      line, now)


_soon: dict[str, Services] = {}  # encounters whose latest checkpoint is to be cosigned
_soon_lock = threading.Lock()
_soon_wake = threading.Event()
_soon_thread: threading.Thread | None = None


def collect_soon(svc: Services, encounter_id: str) -> None:
    """After a commit: have the witnesses asked about the encounter's latest checkpoint, in the
    background (never delaying the caller)."""
    global _soon_thread
    if not svc.config.get("WITNESSES"):
        return
    with _soon_lock:
        _soon[encounter_id] = svc
        if _soon_thread is None or not _soon_thread.is_alive():  # lazily: after gunicorn forks
            _soon_thread = threading.Thread(target=_collect_pending, name="witnesses",
                                            daemon=True)
            _soon_thread.start()
    _soon_wake.set()


def _collect_pending() -> None:
    while True:
        _soon_wake.wait()
        _soon_wake.clear()
        while True:
            with _soon_lock:
                if not _soon:
                    break
                encounter_id, svc = _soon.popitem()
            try:
                with svc.store.read() as tx:
                    found = tx.checkpoint(encounter_id)
                if found is not None:
                    collect(svc, encounter_id, found)
            except Exception:  # noqa: BLE001 - a background courtesy must never die
                log.exception("collecting cosignatures for %s failed", encounter_id)


def _has_line(lines: set[str], target: Target) -> bool:
    name = target.vkey.split("+", 1)[0]
    return any(line.startswith(f"\u2014 {name} ") for line in lines)


def _failure_key(target: Target, found: StoredCheckpoint) -> tuple[str, str, int]:
    return (target.vkey, found.note, found.tree_size)


def _backing_off(svc: Services, target: Target, found: StoredCheckpoint) -> bool:
    with _failures_lock:
        failed_at = _failures.get(_failure_key(target, found))
    return failed_at is not None and time.monotonic() - failed_at < int(
        svc.config["WITNESS_RETRY_SECONDS"])


def _ask(svc: Services, encounter_id: str, found: StoredCheckpoint, target: Target,
         believed: int) -> str | None:
    try:
        line = _add_checkpoint(svc, encounter_id, found, target, believed)
    except (requests.RequestException, WitnessRefused, CryptoError) as exc:
        log.warning("witness %s did not cosign %s at size %d: %s", target.url, encounter_id,
                    found.tree_size, exc)
        with _failures_lock:
            _failures[_failure_key(target, found)] = time.monotonic()
        return None
    return line


def _add_checkpoint(svc: Services, encounter_id: str, found: StoredCheckpoint, target: Target,
                    old_size: int) -> str:
    if old_size > found.tree_size:
        old_size = 0  # our record is ahead of our log: let the witness say what it holds
    for _ in range(2):
        status, kind, text = _post(svc, target, format_add_checkpoint(
            old_size, _proof(svc, encounter_id, old_size, found.tree_size), found.note))
        if status == 409 and kind.startswith("text/x.tlog.size"):
            held = _size(text)
            if held > found.tree_size or held == old_size:
                raise WitnessRefused(f"it holds size {held} of this log; ours is "
                                     f"{found.tree_size}: the log shrank or forked")
            old_size = held
            continue
        if status != 200:
            raise WitnessRefused(f"HTTP {status}: {text[:200].strip()}")
        return _check_line(found, target, text)
    raise WitnessRefused("it changed its stated size twice")


def _post(svc: Services, target: Target, body: bytes) -> tuple[int, str, str]:
    """Status, content type and (bounded) text of the witness's answer."""
    timeout = int(svc.config["WITNESS_TIMEOUT_SECONDS"])
    with requests.post(target.url + "/add-checkpoint", data=body, timeout=timeout, stream=True,
                       headers={"Content-Type": "text/plain"}) as response:
        content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
        if len(content) > MAX_RESPONSE_BYTES:
            raise WitnessRefused("its answer is too long")
        kind = response.headers.get("Content-Type", "")
        return response.status_code, kind, content.decode("utf-8", "replace")


def _size(text: str) -> int:
    if not text.endswith("\n") or not text[:-1].isdigit():
        raise WitnessRefused(f"malformed 409 size body {text[:40]!r}")
    return int(text[:-1])


def _proof(svc: Services, encounter_id: str, old_size: int, new_size: int) -> Sequence[bytes]:
    if old_size == 0 or old_size == new_size:
        return []
    with svc.store.read() as tx:
        hashes = tx.leaf_hashes(encounter_id, new_size)
    return consistency_proof(old_size, hashes)


def _check_line(found: StoredCheckpoint, target: Target, text: str) -> str:
    """The one answer line that is a valid cosignature by `target` over this checkpoint."""
    cp_text, _ = split_note(found.note)
    Checkpoint.parse(cp_text)
    for line in text.splitlines(keepends=True):
        try:
            valid, _ = verify_cosignatures(add_signature_lines(found.note, [line]), [target.vkey])
        except CryptoError:
            continue
        if valid:
            return line
    raise WitnessRefused("its answer holds no valid cosignature by its configured key")
