"""Helpers for the client's end-to-end tests: run `safehold device ...` as a real subprocess,
read its outbox, and audit what the server holds against it."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto.errors import CryptoError
from sync.api import ApiClient, unb64
from sync.device.account import device_login
from sync.device.state import StateFolder
from sync.upload.outbox import ChunkKey, Outbox
from tests.helpers import PYTHON, ROOT, verify_receipt

# Tests must not wait 30 s for a dead network to be declared dead.
FAST_CLIENT = {"SAFEHOLD_SYNC_PATIENCE": "3", "SAFEHOLD_HTTP_TIMEOUT": "5"}


def client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(FAST_CLIENT)
    env.update(extra or {})
    return env


def command(state: Path, *args: str) -> list[str]:
    # `--state` belongs to the subcommand, so it goes after the command words.
    return [PYTHON, "-m", "cli.main", "device", *args, "--state", str(state)]


def cli(state: Path, *args: str, env: Mapping[str, str] | None = None,
        stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command(state, *args), cwd=ROOT, env=client_env(env), input=stdin,
                          capture_output=True, timeout=timeout)
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode(errors="replace"),
                                       done.stderr.decode(errors="replace"))


def cli_popen(state: Path, *args: str, env: Mapping[str, str] | None = None
              ) -> subprocess.Popen[str]:
    return subprocess.Popen(command(state, *args), cwd=ROOT, env=client_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def register(state: Path, url: str) -> None:
    done = cli(state, "register", "--server", url)
    assert done.returncode == 0, done.stderr


def outbox_chunks(state: Path) -> list[dict[str, Any]]:
    """Every chunk row (no bodies), read-only, so polling never competes for the write lock."""
    db = sqlite3.connect(f"file:{state / 'outbox.db'}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT encounter, stream, seq, final, size, sha256, state, attempts,"
                          " last_error FROM chunks ORDER BY encounter, stream, seq").fetchall()
    except sqlite3.OperationalError as exc:
        # A process that is opening the outbox has made the file but not yet committed its
        # first migration: nothing is recorded yet.
        if "no such table" not in str(exc):
            raise
        rows = []
    finally:
        db.close()
    return [dict(row) for row in rows]


def states(state: Path) -> Counter[str]:
    return Counter(str(row["state"]) for row in outbox_chunks(state))


def wait_until(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def api_for(state: Path, url: str) -> ApiClient:
    """The device's own logged-in client, talking straight to `url` (bypassing any proxy)."""
    folder = StateFolder(state)
    settings = folder.require_registered()
    login = device_login(settings.device_id, folder.device_signing_key(), settings.server_name)
    return ApiClient(url, token_provider=login)


@dataclass
class Audit:
    """What the server holds for every encounter in the outbox, compared with the outbox."""

    missing: list[str]      # in the outbox, not on the server
    extra: list[str]        # on the server, not in the outbox
    corrupt: list[str]      # stored bytes differ from the sealed ones
    leaf_count: dict[str, int]
    chunk_count: dict[str, int]
    duplicate_leaves: list[str]
    bad_receipts: list[str]  # acknowledged without a receipt that verifies on its own

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.corrupt or self.duplicate_leaves
                    or self.bad_receipts) and self.leaf_count == self.chunk_count


def audit(state: Path, url: str) -> Audit:
    api = api_for(state, url)
    outbox = Outbox(state / "outbox.db")
    result = Audit([], [], [], {}, {}, [], [])
    try:
        for encounter in sorted({str(r["encounter"]) for r in outbox.chunks()}):
            _audit_encounter(api, outbox, encounter, result)
    finally:
        outbox.close()
    return result


def _receipt_verifies(outbox: Outbox, key: ChunkKey, note: str) -> bool:
    """The stored receipt checked with crypto/ alone (tests/helpers.py), not with sync/."""
    receipt = outbox.receipt(key)
    server_key = StateFolder(Path(outbox.path).parent).require_registered().server_key
    try:
        verify_receipt(receipt or {}, note, server_key)
    except (CryptoError, AssertionError, KeyError, TypeError):
        return False
    return True


def _audit_encounter(api: ApiClient, outbox: Outbox, encounter: str, result: Audit) -> None:
    ours = {ChunkKey(encounter, r["stream"], r["seq"]): r for r in outbox.chunks(encounter)}
    info = api.encounter(encounter)
    held = {ChunkKey(encounter, stream, seq)
            for stream, holding in info["streams"].items() for seq in holding["seqs"]}
    result.missing += [str(k) for k in sorted(ours.keys() - held, key=str)]
    result.extra += [str(k) for k in sorted(held - ours.keys(), key=str)]
    for key in sorted(held & ours.keys(), key=str):
        body, note = api.get_chunk(key.encounter, key.stream, key.seq)
        sealed = outbox.chunk(key)
        assert sealed is not None
        if hashlib.sha256(body).hexdigest() != ours[key]["sha256"] or note != sealed.descriptor:
            result.corrupt.append(str(key))
        if ours[key]["state"] == "acknowledged" and not _receipt_verifies(outbox, key, note):
            result.bad_receipts.append(str(key))
    leaves: list[dict[str, Any]] = []
    while len(leaves) < int(info["log_size"]):  # the server pages leaves
        leaves += api.leaves(encounter, len(leaves), int(info["log_size"]))
    data = [unb64(leaf["data"]) for leaf in leaves]
    result.duplicate_leaves += [f"{encounter}: {n}x" for n in Counter(data).values() if n > 1]
    result.leaf_count[encounter] = len(leaves)
    result.chunk_count[encounter] = len(ours)
