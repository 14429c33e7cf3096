"""Hostile bundles: `safehold verify` refuses them whole, with exit 1, one line naming the
file, and memory bounded by a fixed figure (measured RSS of the real command), never a
MemoryError or a traceback. The bundles are a sound one (tests/bundlekit.py) re-packed the
way an attacker would: a zip bomb, compressed or duplicated members, names that climb out of
the bundle, too many members, oversized files.
"""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from bundlekit import Scenario, run_cli, run_cli_measured, scenario, stored_zip_of_empty_files

from sync.bundle.files import BundleError, BundleReader, zip_bundle
from sync.bundle.limits import JSONL_BASE, MAX_FILES, MAX_LINE, MAX_MANIFEST

MIB = 1 << 20
RSS_BOUND = 150 * MIB  # a sound small bundle verifies in well under this (see the first test)


@pytest.fixture(scope="module")
def sound(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("hostile") / "bundle"
    return scenario(root, {"log": [b'{"event": "start"}'], "audio": os.urandom(3 * 4096)})


def files_of(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(folder).as_posix(), p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()]


def repack(sound: Scenario, target: Path,
           edit: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]] = lambda f: f,
           deflate: frozenset[str] = frozenset()) -> Path:
    """The sound bundle as a zip, its member list edited, some members DEFLATED."""
    members = edit(files_of(sound.bundle))
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 28, 3, 30, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            archive.writestr(info, data)
    return target


def refused(target: Path, *needles: str) -> str:
    """verify exits 1 with one line on stderr naming what was refused, in bounded memory."""
    result, peak = run_cli_measured("verify", target)
    assert result.returncode == 1, result.stdout + result.stderr
    err = result.stderr
    assert err.startswith(f"safehold: {target} was refused: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    assert "Traceback" not in err and "MemoryError" not in err
    assert "OK" not in result.stdout
    assert peak < RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB"
    return err


def test_our_own_zip_is_stored_and_verifies_in_bounded_memory(sound: Scenario,
                                                              tmp_path: Path) -> None:
    archive = tmp_path / "case.zip"
    zip_bundle(sound.bundle, archive)
    with zipfile.ZipFile(archive) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    result, peak = run_cli_measured("verify", archive)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result     OK: nothing was altered" in result.stdout
    assert peak < RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB"


def test_a_zip_bomb_manifest_is_refused_without_inflating_it(sound: Scenario,
                                                            tmp_path: Path) -> None:
    # 256 MiB of white space before the real manifest (valid JSON once inflated), deflated
    # into a few hundred KiB: the reader refuses the compressed member, it never inflates it.
    bomb = tmp_path / "bomb.zip"
    repack(sound, bomb, lambda files: [(n, d) for n, d in files if n != "manifest.json"])
    manifest = (sound.bundle / "manifest.json").read_bytes()
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("manifest.json", "w", force_zip64=True) as member:
        block = b" " * MIB
        for _ in range(256):
            member.write(block)
        member.write(manifest)
    assert bomb.stat().st_size < 2 * MIB
    refused(bomb, "manifest.json is compressed (method 8)", "zip -r -0")


def test_a_deflated_chunk_is_refused(sound: Scenario, tmp_path: Path) -> None:
    target = repack(sound, tmp_path / "deflated.zip",
                    deflate=frozenset({"chunks/audio/00000001.age"}))
    refused(target, "chunks/audio/00000001.age is compressed (method 8)")
    identity = tmp_path / "id.key"
    identity.write_text(sound.identity + "\n")
    out = tmp_path / "out"
    result = run_cli("decrypt", target, "-i", identity, "-o", out)
    assert result.returncode == 1 and "was refused: chunks/audio/00000001.age is compressed" \
        in result.stderr, result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["deflated.zip",
                                                                        "id.key"]


def test_a_member_named_twice_is_refused(sound: Scenario, tmp_path: Path) -> None:
    # A second manifest.json after the first: zipfile alone reads the last one silently.
    forged = b'{"format": "safehold-bundle/v1"}'
    with pytest.warns(UserWarning, match="Duplicate name"):
        target = repack(sound, tmp_path / "twice.zip",
                        lambda files: [*files, ("manifest.json", forged)])
    refused(target, "the zip holds manifest.json twice")


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/cron.d/evil", "chunks/../../x.age",
                                  "chunks/audio/./00000000.age", "log\\leaves.jsonl",
                                  "chunks/audio/\x1b[2J00000000.age"])
def test_a_name_that_climbs_out_or_hides_is_refused(sound: Scenario, tmp_path: Path,
                                                    name: str) -> None:
    target = repack(sound, tmp_path / "names.zip", lambda files: [*files, (name, b"x")])
    err = refused(target, "is not a file name a bundle may hold")
    assert "\x1b" not in err
    assert not (tmp_path.parent / "outside.txt").exists()


def test_an_unexpected_folder_is_refused_in_a_zip_and_in_a_folder(sound: Scenario,
                                                                  tmp_path: Path) -> None:
    target = repack(sound, tmp_path / "extra.zip",
                    lambda files: [*files, ("extra/notes.txt", b"x")])
    refused(target, "extra/notes.txt lies in the folder extra/")
    folder = tmp_path / "folder"
    shutil.copytree(sound.bundle, folder)
    (folder / "chunks/audio/deeper").mkdir()
    refused(folder, "chunks/audio/deeper")


def test_a_zip_of_too_many_members_is_refused_before_its_directory_is_parsed(
        tmp_path: Path) -> None:
    # The builder makes real zips (zipfile reads one of 70 000 members, past zip64's limit).
    sample = tmp_path / "sample.zip"
    stored_zip_of_empty_files(sample, 70_000)
    with zipfile.ZipFile(sample) as check:
        assert len(check.infolist()) == 70_000 and check.read("chunks/a/00069999.age") == b""
    with pytest.raises(BundleError, match="is not a Safehold bundle: it has no manifest.json"):
        BundleReader(sample)  # its zip64 directory is within the limits: only the manifest lacks
    target = tmp_path / "many.zip"
    stored_zip_of_empty_files(target, MAX_FILES + 1)
    refused(target, f"it holds more than {MAX_FILES} files")
    # The same members under end records that claim 1000: the directory itself is counted.
    stored_zip_of_empty_files(target, MAX_FILES + 1, claimed=1000)
    refused(target, f"it holds more than {MAX_FILES} files")


def test_an_oversized_manifest_is_refused_in_a_folder(sound: Scenario, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    shutil.copytree(sound.bundle, folder)
    manifest = (folder / "manifest.json").read_bytes()
    (folder / "manifest.json").write_bytes(b" " * MAX_MANIFEST + manifest)
    refused(folder, f"manifest.json has {MAX_MANIFEST + len(manifest)} bytes, more than the "
            f"{MAX_MANIFEST} a bundle file of its kind may have")


def test_an_oversized_leaf_list_is_refused_in_a_folder_and_in_a_zip(sound: Scenario,
                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    shutil.copytree(sound.bundle, folder)
    leaves = folder / "log/leaves.jsonl"
    with open(leaves, "ab") as out:
        out.write(b"\n" * (JSONL_BASE + MIB))
    refused(folder, "log/leaves.jsonl has", "more than the")
    target = tmp_path / "big.zip"
    zip_bundle(folder, target)
    refused(target, "log/leaves.jsonl has", "more than the")


def test_an_overlong_line_is_an_error_naming_the_file_and_line(sound: Scenario,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    shutil.copytree(sound.bundle, folder)
    (folder / "access.jsonl").write_bytes(b"[" + b" " * MAX_LINE + b"]\n")
    result, peak = run_cli_measured("verify", folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"access.jsonl is not valid JSON lines (line 1 is longer than {MAX_LINE} bytes)"
            in result.stdout)
    assert peak < RSS_BOUND


def test_a_damaged_stored_member_is_refused_naming_it(sound: Scenario, tmp_path: Path) -> None:
    # A byte flipped inside a stored chunk, its CRC-32 left as it was: damage, not a forgery
    # (that would fix the CRC too, and fail the SHA-256 of the signed descriptor instead).
    target = tmp_path / "damaged.zip"
    zip_bundle(sound.bundle, target)
    data = bytearray(target.read_bytes())
    with zipfile.ZipFile(target) as z:
        info = z.getinfo("chunks/audio/00000001.age")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 100] ^= 0xFF
    target.write_bytes(bytes(data))
    assert zlib.crc32(data[start:start + info.file_size]) != info.CRC
    result = run_cli("verify", target)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "a zip member is damaged (Bad CRC-32 for file 'chunks/audio/00000001.age')" in \
        result.stderr
    assert "Traceback" not in result.stderr


def test_a_member_whose_local_name_differs_from_the_directory_is_refused(
        sound: Scenario, tmp_path: Path) -> None:
    # The central directory says one name, the member's own header another: readers that
    # trust one or the other would see different bundles.
    target = tmp_path / "two-names.zip"
    zip_bundle(sound.bundle, target)
    data = bytearray(target.read_bytes())
    with zipfile.ZipFile(target) as z:
        info = z.getinfo("chunks/audio/00000001.age")
    name_at = info.header_offset + 30
    assert data[name_at:name_at + len(info.filename)] == info.filename.encode()
    data[name_at:name_at + len(info.filename)] = b"chunks/audio/00000009.age"
    target.write_bytes(bytes(data))
    result = run_cli("verify", target)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "was refused: a zip member is damaged (File name in directory " \
           "'chunks/audio/00000001.age' and header b'chunks/audio/00000009.age' differ.)" \
           in result.stderr
    assert "OK" not in result.stdout
