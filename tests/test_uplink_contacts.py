"""Contacts a recording can reach: `record` and `sync` pin contacts who joined since.

Real processes: `safehold device ...` and `safehold contact join` against a real server; the
chunks are opened with the contact's own identity straight from the phone's outbox.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from helpers import PYTHON, ROOT

from crypto import age
from crypto.errors import NoIdentityMatched
from sync.upload.outbox import ChunkKey, Outbox
from tests.synckit import cli, register


def join(code: str, url: str, folder: Path, identity_file: Path) -> str:
    """`safehold contact join`; returns the safety number the contact is shown."""
    import subprocess

    from tests.synckit import client_env

    done = subprocess.run([PYTHON, "-m", "cli.main", "contact", "join", code, "--server", url,
                           "--identity", str(identity_file), "--state", str(folder)],
                          cwd=ROOT, env=client_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    return text.split("safety number: ")[1].splitlines()[0].strip()


def identity(path: Path) -> str:
    key = age.generate_identity()
    path.write_text(f"# a trusted contact\n{key}\n")
    return key


def body(state: Path, encounter: str, stream: str, seq: int) -> bytes:
    outbox = Outbox(state / "outbox.db")
    try:
        chunk = outbox.chunk(ChunkKey(encounter, stream, seq))
    finally:
        outbox.close()
    assert chunk is not None
    return chunk.body


def test_record_pins_a_contact_who_joined_since_and_warns_when_nobody_can_open_it(
        live_server, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    register(phone, live_server.url)
    (tmp_path / "a.bin").write_bytes(os.urandom(3000))

    alone = cli(phone, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "1000")
    assert alone.returncode == 0, alone.stderr
    assert "no trusted contact can open encounter " + alone.stdout.strip() in alone.stderr
    assert "sealed only to your own recovery key" in alone.stderr

    invited = cli(phone, "invite", "--long", "--name", "Mom", "--policy", "immediate")
    assert invited.returncode == 0, invited.stderr
    mom = identity(tmp_path / "mom.key")
    mom_safety = join(invited.stdout.strip(), live_server.url, tmp_path / "mom",
                      tmp_path / "mom.key")

    # No `device contacts` in between: the recording itself verifies and pins her.
    (tmp_path / "b.bin").write_bytes(os.urandom(6000))
    recorded = cli(phone, "record", str(tmp_path / "b.bin"), "--chunk-bytes", "1000",
                   "--rate", "3000")
    assert recorded.returncode == 0, recorded.stderr
    assert "new trusted contact Mom verified and pinned" in recorded.stderr
    assert f"Compare this safety number with theirs: {mom_safety}" in recorded.stderr
    assert "no trusted contact can open" not in recorded.stderr
    encounter = recorded.stdout.strip()
    last = body(phone, encounter, "audio", 5)
    assert age.decrypt(last, [mom]) == (tmp_path / "b.bin").read_bytes()[5000:]

    listed = cli(phone, "contacts")
    assert "Mom  [immediate]  pinned" in listed.stdout and mom_safety in listed.stdout


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_sync_pins_new_contacts_and_refuses_a_substituted_key(live_server,
                                                              tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    register(phone, live_server.url)
    for name in ("Ana", "Bob"):
        code = cli(phone, "invite", "--long", "--name", name, "--policy", "on_alert").stdout.strip()
        identity(tmp_path / f"{name}.key")
        join(code, live_server.url, tmp_path / name, tmp_path / f"{name}.key")
    # The server swaps Bob's key for one of its own after he joined.
    attacker = age.generate_identity()
    bob_id = json.loads((tmp_path / "Bob" / "contact.json").read_text())[
        "memberships"][0]["contact_id"]
    with sqlite3.connect(live_server.data_dir / "safehold.sqlite3", timeout=30) as db:
        db.execute("UPDATE contacts SET age_recipient = ? WHERE contact_id = ?",
                   [age.recipient_of(attacker), bob_id])

    synced = cli(phone, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "new trusted contact Ana verified and pinned" in synced.stderr
    assert "REFUSED Bob" in synced.stderr and "substituted" in synced.stderr

    (tmp_path / "c.bin").write_bytes(b"after the check")
    recorded = cli(phone, "record", str(tmp_path / "c.bin"))
    assert recorded.returncode == 0, recorded.stderr
    assert "verified and pinned" not in recorded.stderr  # nothing new to pin
    chunk = body(phone, recorded.stdout.strip(), "audio", 0)
    assert age.x25519_stanza_count(age.read_header(chunk)) == 2  # Ana and the recovery key
    assert age.decrypt(chunk, [age.generate_identity(), _key(tmp_path / "Ana.key")])
    with pytest.raises(NoIdentityMatched):
        age.decrypt(chunk, [attacker])


def _key(path: Path) -> str:
    return [line for line in path.read_text().splitlines() if line.startswith("AGE-")][0]
