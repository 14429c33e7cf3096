"""Rollback and forks are evident to the trusted contacts who hold the evidence (issue 10).

One real server process, a phone and three contacts made through the CLI (module scope, so the
recording is made once). Mom fetches the recording twice and so holds the checkpoint of the
larger log; Dad never fetches but gets the alert's notification (a webhook and an email, from
the real worker) with the log's latest signed checkpoint; Carol has neither. Then the operator
attacks as an operator would: a log rewritten and re-signed with the server's key, served
through a proxy on the server's address; and a database backup from half-way through the
recording, restored.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bundlekit import ROOT, run_cli
from helpers import ServerProcess
from notifykit import SmtpSink, WebhookReceiver

from server.config import load_config
from server.worker import build_worker
from tests import synckit
from tests.hostilekit import behind_hostile, read_key, rewritten_log

pytestmark = pytest.mark.sqlite_only("restores a copy of the SQLite file as a backup")


FAST = {"SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}
CHUNKS = 12


def safehold(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`safehold ARGS...` in its own process, with `stdin` as its standard input."""
    if stdin is None:
        return run_cli(*args, env=FAST, timeout=120)
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **FAST}, input=stdin,
                          capture_output=True, text=True, timeout=120)


def ok(*args: str | Path) -> str:
    done = run_cli(*args, env=FAST, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Scene:
    root: Path
    server: ServerProcess
    phone: Path
    mom: Path
    dad: Path
    carol: Path
    encounter: str
    backup: Path  # the database when the log was half as long
    dad_webhook: bytes  # the body Dad's receiver got with the alert
    dad_email: Path  # the email Dad got with the alert, as his mail client saves it
    first_bundle: Path  # Mom's first fetch (the smaller log)


def _contact(server: ServerProcess, root: Path, name: str, phone: Path,
             *notify: str) -> Path:
    invited = ok("device", "invite", "--long", "--name", name, "--policy", "immediate",
                 "--state", phone)
    ok("keygen", "-o", root / f"{name}.key")
    ok("contact", "join", invited.strip(), "--server", server.url, "--identity",
       root / f"{name}.key", "--state", root / name, *notify)
    return root / name


def _live_encounter(phone: Path) -> str:
    return str(synckit.outbox_chunks(phone)[0]["encounter"])


def _acknowledged(phone: Path) -> int:
    return sum(c["state"] == "acknowledged" for c in synckit.outbox_chunks(phone))


def _deliver(server: ServerProcess, smtp: SmtpSink) -> None:
    """The real worker (`safehold worker`), a pass, on the server's own data folder."""
    worker = build_worker(load_config({
        "SAFEHOLD_DATA_DIR": str(server.data_dir), "SAFEHOLD_PUBLIC_URL": server.url,
        "SAFEHOLD_WEBHOOK_ALLOW_PRIVATE": "1", "SAFEHOLD_SMTP_HOST": "127.0.0.1",
        "SAFEHOLD_SMTP_PORT": str(smtp.port)}))
    try:
        worker.run_once()
    finally:
        worker.store.close()


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("contactcp")
    server = ServerProcess(root / "data").start()
    hook, smtp = WebhookReceiver().start(), SmtpSink().start()
    try:
        phone = root / "phone"
        ok("device", "register", "--server", server.url, "--state", phone)
        mom = _contact(server, root, "mom", phone)
        dad = _contact(server, root, "dad", phone, "--notify-webhook", hook.url,
                       "--notify-email", "dad@example.org")
        carol = _contact(server, root, "carol", phone)
        ok("device", "contacts", "--state", phone)  # verify and pin all three
        source = root / "audio.bin"
        source.write_bytes(os.urandom(CHUNKS * 2048))
        live = synckit.cli_popen(phone, "record", str(source), "--chunk-bytes", "2048",
                                 "--rate", "4096")
        synckit.wait_until(lambda: _acknowledged(phone) >= 3, 60, "three chunks acknowledged")
        backup = root / "backup.sqlite3"
        with sqlite3.connect(server.data_dir / "safehold.sqlite3") as db, \
                sqlite3.connect(backup) as copy:
            db.backup(copy)  # docs/operations.md "Backups", half-way through the recording
        encounter = _live_encounter(phone)
        ok("fetch", encounter, "-o", root / "mom-1", "--state", mom)  # following it live
        out, err = live.communicate(timeout=60)
        assert live.returncode == 0, err
        assert out.strip().splitlines()[0] == encounter
        ok("fetch", encounter, "-o", root / "mom-2", "--state", mom)
        ok("device", "alert", encounter, "--state", phone)
        _deliver(server, smtp)
        webhook = [m.body for m in hook.received
                   if json.loads(m.body)["kind"] == "alert"][-1]
        mail = [m for _f, to, m in smtp.messages if to == ["dad@example.org"]
                and m["Subject"] == "Safehold: An alert was raised"][-1]
        saved = root / "alert.eml"
        saved.write_bytes(mail.as_bytes())
        yield Scene(root, server, phone, mom, dad, carol, encounter, backup, webhook, saved,
                    root / "mom-1")
    finally:
        hook.stop()
        smtp.stop()
        server.stop()


def _held(contact: Path, encounter: str) -> list[dict[str, object]]:
    path = contact / "checkpoints.json"
    if not path.exists():
        return []
    found: list[dict[str, object]] = json.loads(path.read_text())["encounters"].get(encounter, [])
    return found


def test_notifications_carry_the_latest_signed_checkpoint(scene: Scene) -> None:
    body = json.loads(scene.dad_webhook)
    note = body["checkpoint"]
    origin, size = note.split("\n")[:2]
    assert origin == f"{scene.server.name}/safehold/encounter/{scene.encounter}"
    # the log as it was when the alert went out: every chunk of both recordings is in it
    assert int(size) >= 8
    mail = scene.dad_email.read_text()
    assert "BEGIN SAFEHOLD CHECKPOINT" in mail
    # Mom's fetches kept the checkpoint of the larger log, and only it (the smaller one was
    # proven a prefix of it by the leaves)
    kept = _held(scene.mom, scene.encounter)
    assert len(kept) == 1 and kept[0]["source"] == "fetch", kept
    assert int(str(kept[0]["chunks"])) >= CHUNKS, kept


def test_contact_keeps_the_notified_checkpoint_and_refuses_a_forged_one(scene: Scene) -> None:
    done = safehold("contact", "checkpoint", "-", "--state", scene.dad,
                    stdin=scene.dad_webhook.decode())
    assert done.returncode == 0, done.stderr
    size = int(json.loads(scene.dad_webhook)["checkpoint"].split("\n")[1])
    assert f"encounter {scene.encounter}: {size} log entries" in done.stdout
    assert [k["size"] for k in _held(scene.dad, scene.encounter)] == [size]
    # the email's copy is the same checkpoint: kept once
    again = safehold("contact", "checkpoint", scene.dad_email, "--state", scene.dad)
    assert again.returncode == 0, again.stderr
    assert len(_held(scene.dad, scene.encounter)) == 1
    # Mom holds a smaller checkpoint from her fetch: the server proves the notified one
    # extends it (a copy of her folder, so her own evidence stays as her fetches left it)
    mom = scene.root / "mom-copy-1"
    shutil.copytree(scene.mom, mom)
    both = safehold("contact", "checkpoint", "-", "--state", mom,
                    stdin=scene.dad_webhook.decode())
    assert both.returncode == 0 and "consistent with the one of" in both.stdout, both.stderr
    assert len(_held(mom, scene.encounter)) == 2
    # a checkpoint of the same size under another root (a fork) is refused and not kept
    note = json.loads(scene.dad_webhook)["checkpoint"]
    other = _resigned(scene, note, b"\x01" * 32)
    forked = safehold("contact", "checkpoint", "-", "--state", scene.dad, stdin=other)
    assert forked.returncode == 1, forked.stderr
    assert "forked" in forked.stderr and scene.encounter in forked.stderr, forked.stderr
    assert len(_held(scene.dad, scene.encounter)) == 1
    # one not signed by the pinned server key is refused and not kept
    bad = note.replace(note.split("\n")[2], "A" * 43 + "=")
    refused = safehold("contact", "checkpoint", "-", "--state", scene.dad, stdin=bad)
    assert refused.returncode == 1 and "server key" in refused.stderr, refused.stderr
    assert len(_held(scene.dad, scene.encounter)) == 1


def _resigned(scene: Scene, note: str, root: bytes) -> str:
    """The note's origin and size under another root, signed with the server's own key."""
    from crypto.checkpoint import Checkpoint, sign_checkpoint

    origin, size = note.split("\n")[:2]
    return sign_checkpoint(Checkpoint(origin, int(size), root),
                           read_key(scene.server.data_dir / "server.key"))


# --- Attack: a rewritten log, re-signed with the server's key, shown to a contact ---------------


def test_a_forked_log_is_refused_by_a_contact_who_fetched(scene: Scene) -> None:
    def swap(leaves: list[bytes]) -> list[bytes]:
        return [leaves[1], leaves[0], *leaves[2:]]

    rule = rewritten_log(read_key(scene.server.data_dir / "server.key"), scene.server.name, swap)
    before = (scene.mom / "checkpoints.json").read_bytes()
    moved, hostile = behind_hostile(scene.server, [rule])
    try:
        done = safehold("fetch", scene.encounter, "-o", scene.root / "mom-forked",
                        "--state", scene.mom)
    finally:
        hostile.stop()
        moved.stop()
        scene.server.start()
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert scene.encounter in line and "was forked" in line, line
    assert not (scene.root / "mom-forked" / "manifest.json").exists()
    assert (scene.mom / "checkpoints.json").read_bytes() == before  # the forged one not kept


# --- Attack: a database backup from half-way through the recording, restored ------------------


@pytest.fixture(scope="module")
def rolled_back(scene: Scene) -> Scene:
    scene.server.stop()
    database = scene.server.data_dir / "safehold.sqlite3"
    for stale in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copy(scene.backup, database)
    scene.server.start()
    return scene


def test_a_contact_who_fetched_before_refuses_the_rolled_back_log(rolled_back: Scene) -> None:
    scene = rolled_back
    held = _held(scene.mom, scene.encounter)
    done = safehold("fetch", scene.encounter, "-o", scene.root / "mom-3", "--state", scene.mom)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert f"encounter {scene.encounter}" in line and "rolled back" in line, line
    assert f"checkpoint of size {held[0]['size']}" in line, line
    with sqlite3.connect(scene.backup) as db:  # what the restored database still holds
        (left,) = db.execute("SELECT COUNT(*) FROM chunks WHERE encounter_id = ?",
                             [scene.encounter]).fetchone()
    gone = int(str(held[0]["chunks"])) - left
    assert gone >= 1 and f"{gone} chunk(s) you had seen are gone" in line, line
    assert "OK" not in done.stdout and not (scene.root / "mom-3").exists()
    assert _held(scene.mom, scene.encounter) == held  # the evidence stays


def test_a_contact_with_only_the_webhook_checkpoint_detects_the_rollback(
        rolled_back: Scene) -> None:
    scene = rolled_back
    kept = safehold("contact", "checkpoint", "-", "--state", scene.dad,
                    stdin=scene.dad_webhook.decode())
    assert kept.returncode == 0, kept.stderr
    done = safehold("fetch", scene.encounter, "-o", scene.root / "dad-1", "--state", scene.dad)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert scene.encounter in line and "rolled back" in line and "notification" in line, line
    assert not (scene.root / "dad-1" / "manifest.json").exists()
    # fed to a contact who holds a smaller checkpoint, the rolled-back server cannot prove
    # that the notified one extends it: said at once, and the notified one is kept
    mom = scene.root / "mom-copy-2"
    shutil.copytree(scene.mom, mom)
    unproven = safehold("contact", "checkpoint", "-", "--state", mom,
                        stdin=scene.dad_webhook.decode())
    assert unproven.returncode == 1, unproven.stderr
    assert "EVIDENCE TAMPERING" in unproven.stderr and "cannot prove" in unproven.stderr
    assert scene.encounter in unproven.stderr
    assert len(_held(mom, scene.encounter)) == 2


def test_verify_against_held_checkpoints_fails_a_bundle_of_the_rolled_back_log(
        rolled_back: Scene) -> None:
    scene = rolled_back
    bundle = scene.root / "carol-1"
    ok("fetch", scene.encounter, "-o", bundle, "--state", scene.carol)  # Carol saw nothing
    assert run_cli("verify", bundle, env=FAST).returncode == 0  # on its own it verifies
    for held in (("--state", scene.mom), ("--checkpoint", scene.dad_email)):
        done = run_cli("verify", bundle, *held, env=FAST)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "rolled back" in done.stdout and scene.encounter in done.stdout, done.stdout
    # Mom's first bundle was fetched before she saw the larger log: it may rightly be
    # smaller; verify says it cannot tell offline, and does not fail it
    older = run_cli("verify", scene.first_bundle, "--state", scene.mom, env=FAST)
    assert older.returncode == 0, older.stdout + older.stderr
    assert "cannot be checked offline" in older.stdout, older.stdout
