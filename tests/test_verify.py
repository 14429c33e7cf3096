"""`safehold verify` on sound bundles: what it certifies, and how it reports gaps and cut-offs.

Bundles are built with crypto/ directly (tests/bundlekit.py plays phone and server); the
command runs as a real process. Tampered bundles are in test_tamper.py.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from bundlekit import Scenario, run_cli, scenario

from crypto.signing import key_fingerprint
from sync.bundle.files import BundleReader, zip_bundle
from sync.verifying.verify import verify_bundle

LOG = [b'{"event": "start"}', b'{"event": "badge", "number": "4711"}', b'{"event": "stop"}']


@pytest.fixture(scope="module")
def sound(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("sound") / "bundle"
    return scenario(root, {"log": LOG, "audio": os.urandom(18000), "video": os.urandom(9000)})


def test_a_sound_bundle_verifies_and_names_who_recorded_and_who_witnessed(sound: Scenario) -> None:
    result = run_cli("verify", sound.bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert key_fingerprint(sound.witness.verifier) in out
    assert key_fingerprint(sound.device.verifier) in out
    assert "stream     audio: seq 0-4 (5 chunks), closed by final chunk 4" in out.lower()
    assert "video: seq 0-2 (3 chunks), closed by final chunk 2" in out
    assert "log: seq 0-2 (3 chunks), closed by final chunk 2" in out
    assert "Result     OK: nothing was altered" in out
    assert "warning" not in out.lower() and "ERROR" not in out


def test_the_same_bundle_zipped_verifies_too(sound: Scenario, tmp_path: Path) -> None:
    flat = tmp_path / "flat.zip"
    zip_bundle(sound.bundle, flat)
    # A zip made of the folder itself (one top-level directory, with folder entries, as
    # `zip -r -0 nested.zip bundle/` makes it) is accepted as well.
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(sound.bundle.parent.rglob("*")):
            archive.write(path, path.relative_to(sound.bundle.parent).as_posix())
    for archive in (flat, nested):
        result = run_cli("verify", archive)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "closed by final chunk 4" in result.stdout


def test_every_input_file_is_hashed_exactly(sound: Scenario) -> None:
    with BundleReader(sound.bundle) as reader:
        result = verify_bundle(reader, workers=2)
    on_disk = sorted(p.relative_to(sound.bundle).as_posix()
                     for p in sound.bundle.rglob("*") if p.is_file())
    assert sorted(result.inputs) == on_disk
    import hashlib

    for name, (digest, size) in result.inputs.items():
        data = (sound.bundle / name).read_bytes()
        assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_a_cut_off_recording_is_reported_at_its_last_chunk_and_still_verifies(
        tmp_path: Path) -> None:
    # The phone sealed 10 chunks; it was taken after the server had received seq 0-6.
    cut = scenario(tmp_path / "cut", {"audio": os.urandom(40000)}, cut_off={"audio"},
                   never_sent={"audio": {7, 8, 9}})
    last = next(c for c in cut.recording.chunks if c.seq == 6)
    signed = json.loads((cut.bundle / "chunks/audio/00000006.receipt.json").read_text())
    result = run_cli("verify", cut.bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audio: seq 0-6 (7 chunks), CUT OFF after seq 6" in result.stdout
    device_time = last.note.split("\ntime ")[1].split("\n")[0]
    assert (f"audio was cut off: no final chunk; the last is seq 6, signed {device_time} "
            f"(device clock), received {signed['received_at']} (server)") in result.stdout
    assert "OK: nothing was altered (1 warnings" in result.stdout


def test_seqs_that_never_reached_the_server_are_named_but_are_not_alteration(
        tmp_path: Path) -> None:
    gaps = scenario(tmp_path / "gaps", {"audio": os.urandom(40000)},
                    never_sent={"audio": {2, 5, 6}})
    result = run_cli("verify", gaps.bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISSING seq 2, 5-6" in result.stdout
    assert "audio: seq 2, 5-6 never reached the server (not in its log)" in result.stdout
    assert "closed by final chunk 9" in result.stdout


def test_a_path_that_is_no_bundle_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("verify", tmp_path / "empty")
    assert result.returncode == 2
    assert "is not a Safehold bundle: it has no manifest.json" in result.stderr
    result = run_cli("verify", tmp_path / "absent")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_files_outside_the_format_are_warned_about_not_trusted(sound: Scenario,
                                                               tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(sound.bundle, bundle)
    (bundle / "notes.txt").write_text("added later")
    shutil.copy(bundle / "chunks/audio/00000001.age", bundle / "chunks/audio/1.age")
    result = run_cli("verify", bundle)
    assert result.returncode == 0, result.stdout
    assert "notes.txt is not part of the bundle format (not checked)" in result.stdout
    assert "chunks/audio/1.age is not part of the bundle format (not checked)" in result.stdout


def test_several_processes_find_exactly_what_one_finds(tmp_path: Path) -> None:
    # 48 chunks: enough for verify to use worker processes (small bundles stay in-process).
    many = scenario(tmp_path / "many", {"audio": os.urandom(48 * 512)}, chunk_bytes=512)
    chunk = many.bundle / "chunks/audio/00000031.age"
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\x00")
    (many.bundle / "chunks/audio/00000040.receipt.json").write_text("{}")
    with BundleReader(many.bundle) as reader:
        alone, pooled = verify_bundle(reader, workers=1), verify_bundle(reader, workers=3)
    assert [p.to_json() for p in pooled.problems] == [p.to_json() for p in alone.problems]
    assert [c.to_json() for c in pooled.chunks] == [c.to_json() for c in alone.chunks]
    assert pooled.inputs == alone.inputs
    assert {(p.check, p.file) for p in pooled.errors} == {
        ("chunk_digest", "chunks/audio/00000031.age"),
        ("receipt_malformed", "chunks/audio/00000040.receipt.json"),
        ("replaced", "chunks/audio/00000031.age")}
