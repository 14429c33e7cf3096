"""What a person meets when an encounter id or a bundle folder is not quite right (issue 14).

- `fetch -o FOLDER` takes only a new or empty folder or a bundle of the same encounter; it does
  not scatter a bundle among somebody's files, and a fetch stopped half-way leaves a folder
  that `verify` calls an incomplete download and the same fetch completes.
- A typo'd encounter id is a server refusal (exit 3) that does not tell a contact whether the
  encounter exists; ids in upper case are the same ids; `record --encounter` with an id this
  device never began refuses instead of starting a new encounter; `decrypt ID` says to fetch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bundlekit import ROOT, run_cli

from tests.synckit import cli, cli_popen, outbox_chunks, register

UNKNOWN = "0b3c6a1e-7f2d-4c59-9a41-5d8e2f1b7c60"


def record(state: Path, media: bytes) -> str:
    done = cli(state, "record", "-", "--chunk-bytes", "4096", stdin=media)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_fetch_into_a_folder_of_other_files_is_refused_and_leaves_it_alone(
        live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    encounter = record(state, os.urandom(10_000))
    desk = tmp_path / "desk"
    desk.mkdir()
    (desk / "notes.txt").write_text("my notes\n")
    (desk / "chunks").mkdir()
    (desk / "chunks" / "keep.txt").write_text("not a chunk\n")
    before = listing(desk)
    # `-o .` from inside that folder, as the user typed it.
    done = subprocess.run([sys.executable, "-m", "cli.main", "fetch", encounter, "-o", ".",
                           "--state", str(state)], cwd=desk, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1
    assert "is a folder with other files in it, not a bundle of this encounter; choose a new " \
           "or empty folder" in done.stderr
    assert listing(desk) == before and sorted(os.listdir(desk)) == ["chunks", "notes.txt"]
    # An empty folder that exists is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    fetched = run_cli("fetch", encounter, "-o", empty, "--state", state)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert (empty / "manifest.json").is_file()
    assert not any(p.name.startswith(".safehold-fetching") for p in empty.iterdir())


def _largest_blob(data_dir: Path, names: set[Path]) -> Path:
    blobs = [p for p in (data_dir / "blobs").rglob("*") if p.is_file() and p not in names]
    return max(blobs, key=lambda p: p.stat().st_size)


def test_an_interrupted_fetch_is_an_incomplete_download_and_the_same_fetch_finishes(
        live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    other = record(state, b"another encounter")
    old_blobs = {p for p in (live_server.data_dir / "blobs").rglob("*") if p.is_file()}
    media = os.urandom(40_000)
    encounter = record(state, media)
    # The server serves one chunk damaged (a bad disk): fetch stops part-way, as a dropped
    # connection or Ctrl-C would stop it, with some chunks on disk and no manifest.
    blob = _largest_blob(live_server.data_dir, old_blobs)
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    bundle = tmp_path / "case"
    try:
        stopped = run_cli("fetch", encounter, "-o", bundle, "--state", state)
    finally:
        blob.write_bytes(good)
    assert stopped.returncode in (1, 3), stopped.stdout + stopped.stderr
    assert not (bundle / "manifest.json").exists()
    assert list(bundle.glob("chunks/*/*.age")), "some chunks were written before it stopped"

    verified = run_cli("verify", bundle)
    assert verified.returncode == 2
    assert verified.stderr.strip() == (
        f"safehold: {bundle} is an incomplete download: run the same fetch again "
        f"(safehold fetch {encounter} -o {bundle})")
    assert "no manifest.json" not in verified.stderr
    decrypted = run_cli("decrypt", bundle, "-i", state / "recovery.key", "-o", tmp_path / "o")
    assert decrypted.returncode == 2 and "incomplete download" in decrypted.stderr

    before = listing(bundle)
    wrong = run_cli("fetch", other, "-o", bundle, "--state", state)
    assert wrong.returncode == 2
    assert f"{bundle} holds a bundle of encounter {encounter}, not {other}" in wrong.stderr
    assert listing(bundle) == before

    resumed = run_cli("fetch", encounter, "-o", bundle, "--state", state)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Result     OK: nothing was altered" in resumed.stdout
    assert not (bundle / ".safehold-fetching.json").exists()
    out = tmp_path / "out"
    assert run_cli("decrypt", bundle, "-i", state / "recovery.key", "-o", out).returncode == 0
    assert b"".join(p.read_bytes() for p in out.iterdir()
                    if p.name.startswith("audio.")) == media


def test_encounter_ids_in_upper_case_are_the_same_ids(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    encounter = record(state, os.urandom(5000))
    shouted = f"  {encounter.upper()} "
    fetched = run_cli("fetch", shouted, "-o", tmp_path / "case", "--state", state)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert json.loads((tmp_path / "case/manifest.json").read_text())["encounter_id"] == encounter
    # A second stream joins a recording still running, by its id in upper case.
    source = tmp_path / "slow.bin"
    source.write_bytes(os.urandom(48_000))
    running = cli_popen(state, "record", str(source), "--chunk-bytes", "4096", "--rate",
                        "16000")
    assert running.stdout is not None
    live = running.stdout.readline().strip()
    more = cli(state, "record", "-", "--encounter", live.upper(), "--stream", "video",
               stdin=b"v" * 100)
    assert running.wait(timeout=60) == 0
    assert more.returncode == 0, more.stderr
    assert more.stdout.strip() == live
    assert {c["stream"] for c in outbox_chunks(state) if c["encounter"] == live} == \
        {"audio", "video", "log"}
    alerted = cli(state, "alert", encounter.upper())
    assert alerted.returncode == 0, alerted.stderr
    assert f"alert raised on {encounter}" in alerted.stdout
    bad = run_cli("fetch", "0B3C6A1E-not-a-uuid", "-o", tmp_path / "x", "--state", state)
    assert bad.returncode == 2 and "'0B3C6A1E-not-a-uuid' is not an encounter id" in bad.stderr


def test_record_into_an_unknown_encounter_says_so_instead_of_starting_it_silently(
        live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    record(state, b"x" * 5000)
    before = len(outbox_chunks(state))
    done = cli(state, "record", "-", "--encounter", UNKNOWN, stdin=b"a" * 5000)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == UNKNOWN
    assert (f"safehold: encounter {UNKNOWN} is new to this device (not begun here, nor seen by "
            "`safehold device sync`): starting it.") in done.stderr
    assert len([r for r in outbox_chunks(state) if r["encounter"] == UNKNOWN]) > 0
    assert len(outbox_chunks(state)) > before
    # continuing an encounter this device knows says nothing of the kind
    again = cli(state, "record", "-", "--encounter", UNKNOWN, "--stream", "video",
                stdin=b"b" * 3000)
    assert "is new to this device" not in again.stderr


def test_decrypt_or_verify_of_an_encounter_id_says_to_fetch_it_first(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    assert run_cli("keygen", "-o", key).returncode == 0
    for args in (("decrypt", UNKNOWN.upper(), "-i", key, "-o", tmp_path / "out"),
                 ("verify", UNKNOWN)):
        done = run_cli(*args)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"safehold: there is no bundle {args[1]}, and that looks like an encounter id; "
            f"fetch it first: safehold fetch {UNKNOWN} -o BUNDLE")
    assert not (tmp_path / "out").exists()
    missing = run_cli("verify", tmp_path / "nothing-here")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_contact_asking_for_an_unknown_or_unreleased_encounter_gets_exit_3(
        live_server, tmp_path: Path) -> None:
    phone, mom = tmp_path / "phone", tmp_path / "mom"
    register(phone, live_server.url)
    invited = cli(phone, "invite", "--long", "--name", "Mom", "--policy", "on_alert")
    assert invited.returncode == 0, invited.stderr
    assert run_cli("keygen", "-o", tmp_path / "mom.key").returncode == 0
    joined = run_cli("contact", "join", invited.stdout.strip(), "--server", live_server.url,
                     "--identity", tmp_path / "mom.key", "--state", mom)
    assert joined.returncode == 0, joined.stderr
    assert cli(phone, "contacts").returncode == 0
    unreleased = record(phone, os.urandom(3000))  # on_alert: not released without an alert
    answers = []
    for encounter in (unreleased, UNKNOWN):
        done = run_cli("fetch", encounter, "-o", tmp_path / encounter, "--state", mom)
        assert done.returncode == 3, done.stdout + done.stderr
        answers.append(done.stderr.replace(encounter, "ID"))
        assert not (tmp_path / encounter).exists()
    # One answer for both: a contact cannot tell an unreleased encounter from none at all.
    assert answers[0] == answers[1] == (
        "safehold: encounter ID is not available to this contact: there is no such encounter, "
        "or it has not been released to you; check the id with `safehold contact list`\n")
