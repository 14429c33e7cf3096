"""`safehold fetch` against a real server, and the README walkthrough end to end.

Everything runs as a user runs it: `safehold serve` on loopback (tests/conftest.py), the device
client `safehold device ...` and `safehold fetch | verify | decrypt` as subprocesses.

The walkthrough runs twice: the owner fetching with their own device and decrypting with
their recovery identity (state/recovery.key, to which every chunk is sealed), and a trusted
contact who joined by invitation fetching what was released to them and decrypting with their
own key.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from bundlekit import run_cli

from crypto.signing import generate_signing_key, key_fingerprint, verifier_key
from sync.bundle.files import FETCHING
from sync.errors import ServerRefusal
from tests.synckit import api_for, cli, cli_popen, register, wait_until

CHUNK = 256 * 1024


def record_file(state: Path, tmp_path: Path, media: bytes) -> str:
    source = tmp_path / "media.bin"
    source.write_bytes(media)
    done = cli(state, "record", str(source), "--chunk-bytes", str(CHUNK))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[0]


def test_readme_walkthrough_record_fetch_verify_decrypt(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    media = os.urandom(3 * 1024 * 1024 + 4321)
    encounter = record_file(state, tmp_path, media)

    bundle = tmp_path / "case-1"
    fetched = run_cli("fetch", encounter, "-o", bundle, "--zip", "--state", state)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    # 13 audio chunks and the event log's entries (start, chunk times, stop), all new.
    assert re.search(rf"Fetched    (\d+) chunks into {bundle} \(\1 downloaded now", fetched.stdout)
    assert "audio: seq 0-12 (13 chunks), closed by final chunk 12" in fetched.stdout
    assert key_fingerprint(live_server.server_key()) in fetched.stdout

    for target in (bundle, tmp_path / "case-1.zip"):
        verified = run_cli("verify", target)
        assert verified.returncode == 0, verified.stdout
        assert "Result     OK: nothing was altered" in verified.stdout
        assert "warning" not in verified.stdout  # device ids and manifest fields well-formed

    out = tmp_path / "decrypted"
    decrypted = run_cli("decrypt", tmp_path / "case-1.zip", "-i", state / "recovery.key",
                        "-o", out)
    assert decrypted.returncode == 0, decrypted.stdout + decrypted.stderr
    assert (out / "audio.bin").read_bytes() == media
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert events, "the event log stream was recorded and decrypted"
    report = json.loads((out / "report.json").read_text())
    assert report["server"]["fingerprint"] == key_fingerprint(live_server.server_key())
    assert report["bundle"]["fetched_by"]["kind"] == "device"
    assert report["encounter"]["log_origin"] == f"{live_server.name}/safehold/encounter/{encounter}"
    assert report["encounter"]["created_at"] is not None
    for seq in (0, 7, 12):  # stock age opens any chunk to exactly its part
        part = subprocess.run(["age", "-d", "-i", str(state / "recovery.key"),
                               str(bundle / f"chunks/audio/{seq:08d}.age")],
                              capture_output=True, check=True).stdout
        assert part == media[seq * CHUNK:(seq + 1) * CHUNK]


def safehold(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"})


def test_readme_walkthrough_with_a_trusted_contact(live_server, tmp_path: Path) -> None:
    """Phone registers and invites; Mom joins with her own key; the phone confirms her and
    records; Mom lists, fetches, verifies and decrypts with her key: the input, byte for byte."""
    phone, mom = tmp_path / "phone", tmp_path / "mom"
    assert safehold("device", "register", "--server", live_server.url,
                    "--state", phone).returncode == 0
    invited = safehold("device", "invite", "--long", "--name", "Mom", "--policy", "immediate",
                       "--state", phone)
    assert invited.returncode == 0, invited.stderr
    assert safehold("keygen", "-o", tmp_path / "mom.key").returncode == 0
    joined = safehold("contact", "join", invited.stdout.strip(), "--server", live_server.url,
                      "--identity", tmp_path / "mom.key", "--state", mom)
    assert joined.returncode == 0, joined.stderr
    assert safehold("device", "contacts", "--state", phone).returncode == 0  # verify and pin
    media = os.urandom(2 * 1024 * 1024 + 99)
    encounter = record_file(phone, tmp_path, media)
    assert encounter in safehold("contact", "list", "--state", mom).stdout

    bundle = tmp_path / "case-2"
    fetched = safehold("fetch", encounter, "-o", bundle, "--state", mom)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "audio: seq 0-8 (9 chunks), closed by final chunk 8" in fetched.stdout
    # Mom's reads are themselves in the log; the bundle carries the ones before its checkpoint.
    assert "reads by contacts are in the log" in fetched.stdout
    assert json.loads((bundle / "manifest.json").read_text())["fetched_by"]["kind"] == "contact"
    out = tmp_path / "mom-decrypted"
    decrypted = safehold("decrypt", bundle, "-i", tmp_path / "mom.key", "-o", out)
    assert decrypted.returncode == 0, decrypted.stdout + decrypted.stderr
    assert (out / "audio.bin").read_bytes() == media
    part = subprocess.run(["age", "-d", "-i", str(tmp_path / "mom.key"),
                           str(bundle / "chunks/audio/00000003.age")],
                          capture_output=True, check=True).stdout
    assert part == media[3 * CHUNK:4 * CHUNK]


def test_fetch_resumes_and_downloads_only_what_is_missing(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    media = os.urandom(6 * CHUNK)
    encounter = record_file(state, tmp_path, media)
    bundle = tmp_path / "bundle"
    assert run_cli("fetch", encounter, "-o", bundle, "--state", state).returncode == 0
    # An interrupted fetch: one chunk never arrived, one only half, no manifest yet (and the
    # marker fetch writes first and removes after the manifest).
    (bundle / "chunks/audio/00000002.age").unlink()
    half = bundle / "chunks/audio/00000004.age"
    part = half.with_name(half.name + ".part")
    part.write_bytes(half.read_bytes()[:1000])
    half.unlink()
    (bundle / "manifest.json").unlink()
    (bundle / FETCHING).write_text(json.dumps({"encounter_id": encounter}))
    again = run_cli("fetch", encounter, "-o", bundle, "--state", state)
    assert again.returncode == 0, again.stdout + again.stderr
    got = sum((bundle / f"chunks/audio/{seq:08d}.age").stat().st_size for seq in (2, 4)) - 1000
    assert f"(2 downloaded now, {got} bytes" in again.stdout
    assert not part.exists()
    out = tmp_path / "out"
    assert run_cli("decrypt", bundle, "-i", state / "recovery.key", "-o", out).returncode == 0
    assert (out / "audio.bin").read_bytes() == media


def test_fetch_refuses_a_server_whose_key_changed(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    encounter = record_file(state, tmp_path, os.urandom(1000))
    settings = json.loads((state / "settings.json").read_text())
    pinned = verifier_key(generate_signing_key(live_server.name))
    settings["server_key"] = pinned
    (state / "settings.json").write_text(json.dumps(settings))
    done = run_cli("fetch", encounter, "-o", tmp_path / "bundle", "--state", state)
    assert done.returncode == 1
    assert f"but {key_fingerprint(pinned)} was pinned; nothing was fetched" in done.stderr
    assert not (tmp_path / "bundle" / "manifest.json").exists()


def test_fetch_into_a_bundle_of_another_encounter_is_refused(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    first = record_file(state, tmp_path, os.urandom(1000))
    second = record_file(state, tmp_path, os.urandom(1000))
    bundle = tmp_path / "bundle"
    assert run_cli("fetch", first, "-o", bundle, "--state", state).returncode == 0
    done = run_cli("fetch", second, "-o", bundle, "--state", state)
    assert done.returncode == 2 and f"holds a bundle of encounter {first}" in done.stderr
    unknown = run_cli("fetch", "0b3c6a1e-7f2d-4c59-9a41-5d8e2f1b7c60", "-o", tmp_path / "x",
                      "--state", state)
    assert unknown.returncode == 3 and "404" in unknown.stderr
    bad = run_cli("fetch", "not-an-id", "-o", tmp_path / "y", "--state", state)
    assert bad.returncode == 2 and "is not an encounter id" in bad.stderr


def test_a_recording_cut_off_by_killing_the_client(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    media = os.urandom(40 * 64 * 1024)
    source = tmp_path / "media.bin"
    source.write_bytes(media)
    # Paced like a live capture (0.5 MiB/s: 5 s in all); the phone is "taken" part-way.
    phone = cli_popen(state, "record", str(source), "--chunk-bytes", str(64 * 1024),
                      "--rate", str(512 * 1024))
    assert phone.stdout is not None
    encounter = phone.stdout.readline().strip()
    api = api_for(state, live_server.url)

    def held() -> list[int]:
        try:
            streams = api.encounter(encounter)["streams"]
        except ServerRefusal:  # not created on the server yet
            return []
        return list(streams["audio"]["seqs"]) if "audio" in streams else []

    wait_until(lambda: len(held()) >= 8, what="some chunks on the server")
    phone.send_signal(signal.SIGKILL)
    phone.wait()
    seqs = held()
    assert len(seqs) < 40, "the client was killed before the end"

    bundle = tmp_path / "bundle"
    fetched = run_cli("fetch", encounter, "-o", bundle, "--state", state)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert f"CUT OFF after seq {max(seqs)}" in fetched.stdout
    assert f"audio was cut off: no final chunk; the last is seq {max(seqs)}" in fetched.stdout
    out = tmp_path / "out"
    done = run_cli("decrypt", bundle, "-i", state / "recovery.key", "-o", out)
    assert done.returncode == 0, done.stdout + done.stderr
    piece = 64 * 1024
    expected = b"".join(media[s * piece:(s + 1) * piece] for s in seqs)
    assert (out / "audio.bin").read_bytes() == expected
    if seqs == list(range(len(seqs))):  # the usual case: exactly a prefix
        assert expected == media[:len(seqs) * piece]
