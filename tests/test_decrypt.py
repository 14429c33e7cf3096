"""`safehold decrypt`: byte-identical reassembly, gaps never closed silently, the report.

Bundles are built with crypto/ directly (tests/bundlekit.py); the command runs as a real
process; `age` is Debian's age CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from bundlekit import Scenario, run_cli, scenario

from crypto import age
from crypto.signing import key_fingerprint

LOG = [b'{"event": "start"}', b'{"event": "note", "text": "<b>officer</b> & co"}',
       b'{"event": "stop"}\n']


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_file(directory: Path, identity: str) -> Path:
    path = directory / "key.txt"
    path.write_text(f"# test identity\n{identity}\n")
    return path


@pytest.fixture(scope="module")
def sound(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("sound") / "bundle"
    return scenario(root, {"log": LOG, "audio": os.urandom(70000), "video": os.urandom(150000)},
                    chunk_bytes=65536 + 7)


@pytest.fixture(scope="module")
def decrypted(sound: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("out")
    out = base / "case-17"
    result = run_cli("decrypt", sound.bundle, "-i", key_file(base, sound.identity), "-o", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_every_stream_decrypts_byte_identical(sound: Scenario, decrypted: Path) -> None:
    assert (decrypted / "audio.bin").read_bytes() == sound.inputs["audio"]
    assert (decrypted / "video.bin").read_bytes() == sound.inputs["video"]
    lines = (decrypted / "log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(e) for e in LOG]


def test_stock_age_opens_any_chunk_to_exactly_its_part(sound: Scenario, tmp_path: Path) -> None:
    keys = key_file(tmp_path, sound.identity)
    for stream, seq in (("audio", 0), ("audio", 1), ("video", 2), ("log", 1)):
        chunk = sound.bundle / f"chunks/{stream}/{seq:08d}.age"
        opened = subprocess.run(["age", "-d", "-i", str(keys), str(chunk)], capture_output=True,
                                check=True).stdout
        assert opened == sound.part(stream, seq)


def test_the_report_names_keys_times_and_every_digest(sound: Scenario, decrypted: Path) -> None:
    report = json.loads((decrypted / "report.json").read_text())
    assert report["result"] == {"verified": True, "all_decrypted": True, "errors": 0,
                                "warnings": 0}
    assert report["server"]["fingerprint"] == key_fingerprint(sound.witness.verifier)
    assert report["devices"][0]["fingerprint"] == key_fingerprint(sound.device.verifier)
    assert report["devices"][0]["chunks_signed"] == len(sound.recording.chunks)
    for row in report["chunks"]:
        sealed = next(c for c in sound.recording.chunks
                      if (c.stream, c.seq) == (row["stream"], row["seq"]))
        assert row["sha256"] == sha256(sealed.age_file)
        assert row["received_at"] == sealed.receipt["received_at"]
        assert f"time {row['device_time']}\n" in sealed.note
    for item in report["inputs"]:
        assert item["sha256"] == sha256((sound.bundle / item["file"]).read_bytes())
    for item in report["outputs"]:
        assert item["sha256"] == sha256((decrypted / item["file"]).read_bytes())
    assert {o["file"] for o in report["outputs"]} == {"audio.bin", "video.bin", "log.jsonl"}
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=decrypted,
                             capture_output=True, text=True)
    made_pdf = report["pdf"]["file"] is not None  # report.pdf, where Chromium is installed
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 5 + made_pdf


def test_report_html_is_readable_and_escapes_what_it_shows(sound: Scenario,
                                                            decrypted: Path) -> None:
    page = (decrypted / "report.html").read_text()
    assert "Verified: nothing in this recording was altered." in page
    assert key_fingerprint(sound.witness.verifier) in page
    assert key_fingerprint(sound.device.verifier) in page
    assert sha256(sound.inputs["audio"]) in page
    assert f"safehold verify {sound.bundle}" in page
    assert "<script" not in page


def test_a_cut_off_recording_decrypts_to_exactly_the_prefix_the_server_got(
        tmp_path: Path) -> None:
    audio = os.urandom(40000)
    cut = scenario(tmp_path / "cut", {"audio": audio}, cut_off={"audio"},
                   never_sent={"audio": {7, 8, 9}})
    out = tmp_path / "out"
    result = run_cli("decrypt", cut.bundle, "-i", key_file(tmp_path, cut.identity), "-o", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "audio.bin").read_bytes() == audio[:7 * 4096]
    stream = json.loads((out / "report.json").read_text())["streams"][0]
    assert (stream["cut_off"], stream["last_seq"], stream["final_seq"]) == (True, 6, None)
    assert "CUT OFF: no final chunk; last is seq 6" in (out / "report.html").read_text()


def test_a_gap_is_never_closed_silently(tmp_path: Path) -> None:
    audio = os.urandom(10 * 4096)
    gaps = scenario(tmp_path / "gaps", {"audio": audio}, never_sent={"audio": {3, 4}})
    out = tmp_path / "out"
    result = run_cli("decrypt", gaps.bundle, "-i", key_file(tmp_path, gaps.identity), "-o", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "audio.bin").read_bytes() == audio[:3 * 4096] + audio[5 * 4096:]
    assert "gaps at byte 12288" in result.stdout
    stream = json.loads((out / "report.json").read_text())["streams"][0]
    assert stream["missing"] == [3, 4]
    assert stream["output"]["gaps"] == [
        {"missing": [3, 4], "at_offset": 3 * 4096, "reason": "never reached the server"}]


def test_chunks_the_identity_cannot_open_are_left_out_and_named(tmp_path: Path) -> None:
    audio = os.urandom(5 * 4096)
    other = age.recipient_of(age.generate_identity())
    partly = scenario(tmp_path / "p", {"audio": audio}, sealed_to={("audio", 1): [other]})
    out = tmp_path / "out"
    result = run_cli("decrypt", partly.bundle, "-i", key_file(tmp_path, partly.identity),
                     "-o", out)
    assert result.returncode == 1
    assert "audio: seq 1 could not be decrypted with the given identity" in result.stdout
    assert (out / "audio.bin").read_bytes() == audio[:4096] + audio[2 * 4096:]
    report = json.loads((out / "report.json").read_text())
    assert report["result"]["all_decrypted"] is False
    assert report["streams"][0]["output"]["gaps"] == [
        {"missing": [1], "at_offset": 4096, "reason": "could not be decrypted"}]


def test_a_wrong_identity_writes_nothing(sound: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("decrypt", sound.bundle, "-i",
                     key_file(tmp_path, age.generate_identity()), "-o", out)
    assert result.returncode == 1
    assert "opens none of the chunks" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "key.txt"]


def test_a_passphrase_protected_identity_file_opens(sound: Scenario, tmp_path: Path) -> None:
    protected = tmp_path / "key.age"
    protected.write_bytes(age.encrypt_with_passphrase(f"{sound.identity}\n".encode(),
                                                      "correct horse", work_factor=10))
    out = tmp_path / "out"
    result = run_cli("decrypt", sound.bundle, "-i", protected, "-o", out,
                     env={"SAFEHOLD_PASSPHRASE": "correct horse"})
    assert result.returncode == 0, result.stderr
    assert (out / "audio.bin").read_bytes() == sound.inputs["audio"]
    wrong = run_cli("decrypt", sound.bundle, "-i", protected, "-o", tmp_path / "o2",
                    env={"SAFEHOLD_PASSPHRASE": "wrong"})
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr


def test_an_existing_output_folder_is_never_overwritten(sound: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "evidence.txt").write_text("keep me")
    result = run_cli("decrypt", sound.bundle, "-i", key_file(tmp_path, sound.identity),
                     "-o", out)
    assert result.returncode == 2 and "nothing is overwritten" in result.stderr
    assert [p.name for p in out.iterdir()] == ["evidence.txt"]


def test_an_altered_bundle_is_not_decrypted(sound: Scenario, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(sound.bundle, bundle)
    chunk = bundle / "chunks/video/00000001.age"
    data = bytearray(chunk.read_bytes())
    data[-100] ^= 0x01
    chunk.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = run_cli("decrypt", bundle, "-i", key_file(tmp_path, sound.identity), "-o", out)
    assert result.returncode == 1
    assert "refusing to decrypt an altered bundle" in result.stderr
    assert "chunks/video/00000001.age: was altered" in result.stdout
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_zipped_bundle_decrypts_the_same(sound: Scenario, decrypted: Path,
                                           tmp_path: Path) -> None:
    from sync.bundle.files import zip_bundle

    archive = tmp_path / "bundle.zip"
    zip_bundle(sound.bundle, archive)
    out = tmp_path / "out"
    result = run_cli("decrypt", archive, "-i", key_file(tmp_path, sound.identity), "-o", out)
    assert result.returncode == 0, result.stderr
    for name in ("audio.bin", "video.bin", "log.jsonl"):
        assert (out / name).read_bytes() == (decrypted / name).read_bytes()


def test_many_chunks_decrypt_on_every_core_to_the_same_bytes(tmp_path: Path) -> None:
    # 60 chunks, so decrypt hands them to worker processes; two cannot be opened by the key.
    audio = os.urandom(60 * 1000 + 17)
    other = age.recipient_of(age.generate_identity())
    many = scenario(tmp_path / "many", {"audio": audio}, chunk_bytes=1000,
                    sealed_to={("audio", 7): [other], ("audio", 33): [other]})
    out = tmp_path / "out"
    result = run_cli("decrypt", many.bundle, "-i", key_file(tmp_path, many.identity), "-o", out)
    assert result.returncode == 1, result.stderr
    expected = audio[:7000] + audio[8000:33000] + audio[34000:]
    assert (out / "audio.bin").read_bytes() == expected
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"][0]["sha256"] == sha256(expected)
    assert report["streams"][0]["output"]["gaps"] == [
        {"missing": [7], "at_offset": 7000, "reason": "could not be decrypted"},
        {"missing": [33], "at_offset": 32000, "reason": "could not be decrypted"}]


@pytest.mark.parametrize("altered", ["log/checkpoint.note", "chunks/audio/00000040.receipt.json",
                                     "chunks/audio/00000059.descriptor"])
def test_intact_chunks_in_an_altered_bundle_leave_no_plaintext_behind(
        altered: str, tmp_path: Path) -> None:
    # Every age file is intact and opens with the key, so the one-pass decrypter has written
    # plaintext by the time it learns (from the log, a receipt, a descriptor) that the bundle
    # was altered: all of it must be gone again.
    audio = os.urandom(60 * 1000)
    many = scenario(tmp_path / "many", {"audio": audio}, chunk_bytes=1000)
    target = many.bundle / altered
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    result = run_cli("decrypt", many.bundle, "-i", key_file(tmp_path, many.identity), "-o", out)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refusing to decrypt an altered bundle" in result.stderr
    assert list(out.parent.iterdir()) == []
