"""The bundle format itself: file names, folder and zip reading, and sizes known without a key."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from bundlekit import scenario

from crypto import age
from crypto.age import read_header
from sync.bundle.files import BundleError, BundleReader, chunk_path, parse_chunk_name, zip_bundle
from sync.verifying.chunks import plaintext_size


def test_chunk_names_have_one_spelling_per_seq() -> None:
    assert chunk_path("audio", 7, ".age") == "chunks/audio/00000007.age"
    assert chunk_path("video", 2**32 - 1, ".receipt.json") == "chunks/video/4294967295.receipt.json"
    assert parse_chunk_name("chunks/audio/00000007.age") == ("audio", 7, ".age")
    assert parse_chunk_name("chunks/audio/4294967295.descriptor") == ("audio", 2**32 - 1,
                                                                      ".descriptor")
    for alias in ("chunks/audio/7.age", "chunks/audio/000000007.age", "chunks/Audio/00000007.age",
                  "chunks/audio/00000007.age.bak", "chunks/audio/4294967296.age",
                  "chunks/audio/x/00000007.age"):
        assert parse_chunk_name(alias) is None, alias


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 2 * 65536, 3 * 65536 + 5])
def test_plaintext_size_follows_from_the_age_framing_alone(size: int) -> None:
    identity = age.generate_identity()
    sealed = age.encrypt(os.urandom(size), [age.recipient_of(identity)])
    assert plaintext_size(len(sealed), read_header(sealed).payload_offset) == size
    # A file cut short by a whole tag is not a possible age file of any size.
    offset = read_header(sealed).payload_offset
    assert plaintext_size(offset + 16 + 15, offset) is None


def test_folder_and_zip_read_the_same(tmp_path: Path) -> None:
    sc = scenario(tmp_path / "bundle", {"audio": os.urandom(9000)})
    archive = tmp_path / "bundle.zip"
    zip_bundle(sc.bundle, archive)
    with zipfile.ZipFile(archive) as z:  # stored: age files do not compress
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    with BundleReader(sc.bundle) as folder, BundleReader(archive) as zipped:
        assert zipped.is_zip and not folder.is_zip
        assert folder.names() == zipped.names()
        for name in folder.names():
            assert folder.read_bytes(name) == zipped.read_bytes(name)
            assert folder.size(name) == zipped.size(name)
        entries, strays = zipped.chunk_entries()
        assert [(e.stream, e.seq, sorted(e.files)) for e in entries] == [
            ("audio", seq, [".age", ".descriptor", ".receipt.json"]) for seq in range(3)]
        assert strays == []


def test_a_reader_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(BundleError, match="neither a bundle folder nor a zip"):
        BundleReader(tmp_path / "file.txt")
    with pytest.raises(BundleError, match="has no manifest.json"):
        BundleReader(tmp_path)


def test_symlinks_in_a_bundle_folder_are_not_followed(tmp_path: Path) -> None:
    sc = scenario(tmp_path / "bundle", {"audio": os.urandom(100)})
    secret = tmp_path / "outside.txt"
    secret.write_text("not evidence")
    (sc.bundle / "chunks/audio/00000005.age").symlink_to(secret)
    with BundleReader(sc.bundle) as reader:
        assert "chunks/audio/00000005.age" not in reader.names()
        with pytest.raises(FileNotFoundError):
            reader.read_bytes("chunks/audio/00000005.age")
