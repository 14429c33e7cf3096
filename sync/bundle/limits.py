"""What a bundle may hold: its layout, the size of each file and the shape of a bundle zip.

A bundle comes from outside (a server, a colleague, a court filing), so the reader checks its
whole table of contents before it reads a byte of content: nothing in it may make `verify` use
more memory or time than its own size warrants (docs/protocol.md §4.1, "Limits").

- A zip's members are STORED only: nothing is inflated, so no member holds more than the
  archive's own bytes (a 400 KiB zip cannot hold a 400 MiB manifest). Members are not
  encrypted, not duplicated, and all fit in the archive side by side (no overlapping members).
- The number of files is capped, and so is each file's size, by kind (a manifest, a note, a
  JSON-lines list in proportion to the number of chunks, a chunk).
- Names are the layout's: relative POSIX paths without `.`/`..`/empty parts, backslashes or
  control characters, in the top folder, in `log/` or in `chunks/<stream>/`; nothing deeper.

A bundle that breaks any of this is refused as a whole (BundleRefused, `verify` exits 1).
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterable
from typing import IO

from sync.safetext import safe_text

KIB, MIB = 1024, 1024 * 1024
MAX_CHUNKS = 200_000  # ~ 7 days of one stream in 3-second chunks
MAX_FILES = 4 * MAX_CHUNKS + 16  # four files per chunk (a share: .grant.json), and the log's
MAX_MANIFEST = 1 * MIB
MAX_NOTE = 256 * KIB  # a descriptor, a receipt, a checkpoint (with cosignatures)
MAX_CHUNK_FILE = 64 * MIB  # an age file; the server's default limit is 4 MiB (§3.1)
JSONL_BASE = 16 * MIB  # log/leaves.jsonl, log/consistency.jsonl, access.jsonl ...
JSONL_PER_CHUNK = 16 * KIB  # ... plus this much per chunk (its leaf and the reads of it)
MAX_LINE = 64 * KIB  # one line of a JSON-lines file
MAX_NAME = 255
CD_BYTES_PER_MEMBER = 512  # central directory bytes of one member (46, name, extra fields)

_MANIFEST = "manifest.json"
_JSONL = frozenset({"log/leaves.jsonl", "log/consistency.jsonl", "access.jsonl"})
_NOTES = (".descriptor", ".receipt.json", ".grant.json", ".note")


class BundleError(Exception):
    """The path is not a readable bundle at all (no manifest, not a folder or zip)."""


class BundleRefused(BundleError):
    """The bundle breaks the format's limits or layout (hostile or damaged): it is not read."""


def check_name(name: str) -> None:
    """Refuse a path that is not a plain relative name in the bundle layout."""
    shown = safe_text(name)
    parts = name.split("/")
    if (not name or len(name) > MAX_NAME or not name.isprintable() or "\\" in name
            or name.startswith("/") or any(p in ("", ".", "..") for p in parts)):
        raise BundleRefused(f"'{shown}' is not a file name a bundle may hold (absolute, '..', "
                            "empty parts, backslashes or control characters)")
    folder = parts[:-1]
    allowed = (not folder or folder == ["log"]
               or (len(folder) <= 2 and folder[0] == "chunks"))
    if not allowed:
        raise BundleRefused(f"{shown} lies in the folder {safe_text('/'.join(folder))}/, "
                            "which is not part of the bundle layout (only log/ and "
                            "chunks/<stream>/)")


def check_folder(folder: str) -> None:
    """Refuse a folder (relative path, no trailing slash) the layout has no place for."""
    check_name(folder + "/x")


def chunk_count(names: Iterable[str]) -> int:
    return sum(1 for n in names if n.startswith("chunks/") and n.endswith(".age"))


def size_limit(name: str, chunks: int) -> int:
    """The largest size a file of this name may have in a bundle with `chunks` chunk files."""
    if name == _MANIFEST:
        return MAX_MANIFEST
    if name in _JSONL:
        return JSONL_BASE + JSONL_PER_CHUNK * chunks
    if name.endswith(_NOTES):
        return MAX_NOTE
    return MAX_CHUNK_FILE  # an age file, or a stray file (only ever hashed, in blocks)


def check_sizes(sizes: dict[str, int]) -> None:
    """Every file within its limit (sizes: bundle-relative name -> bytes)."""
    chunks = chunk_count(sizes)
    for name, size in sizes.items():
        limit = size_limit(name, chunks)
        if size > limit:
            raise BundleRefused(f"{safe_text(name)} has {size} bytes, more than the {limit} a "
                                "bundle file of its kind may have")


def too_many_files(count: int) -> BundleRefused:
    return BundleRefused(f"it holds more than {MAX_FILES} files, more than a bundle may have")


# ---------------------------------------------------------------- zip


# zipfile's own reading of the end records (private, unchanged since Python 2): the pre-scan
# below must see exactly the central directory zipfile will then parse.
_end_records = zipfile._EndRecData  # type: ignore[attr-defined]
_ECD_ENTRIES_TOTAL, _ECD_SIZE, _ECD_LOCATION = 4, 5, 9  # its indices
_ZIP64_END_BYTES = 56 + 20  # the zip64 end record and its locator, before the end record
_CENTRAL = struct.Struct("<4s24x3H12x")  # signature, ..., name, extra, comment lengths, ...


def check_zip_directory(path: str) -> None:
    """Before zipfile parses the central directory (all of it, into memory, one object per
    member): count its members and bound each entry's size, reading it in a buffered pass.
    The count the end record claims is not trusted; zipfile does not use it either."""
    with open(path, "rb") as archive:
        end = _end_records(archive)
        if not end:
            raise BundleRefused("the zip is not readable (no end of central directory)")
        size = end[_ECD_SIZE]
        if end[_ECD_ENTRIES_TOTAL] > MAX_FILES:
            raise too_many_files(end[_ECD_ENTRIES_TOTAL])
        if size > MAX_FILES * CD_BYTES_PER_MEMBER:
            raise BundleRefused(f"the zip's central directory has {size} bytes, more than a "
                                "bundle's takes")
        start = end[_ECD_LOCATION] - size
        if end[0] == b"PK\x06\x06":
            start -= _ZIP64_END_BYTES
        if start < 0:
            raise BundleRefused("the zip is not readable (bad central directory offset)")
        archive.seek(start)
        _scan_directory(archive, size)


def _scan_directory(archive: IO[bytes], size: int) -> None:
    done = count = 0
    while done < size:
        head = archive.read(_CENTRAL.size)
        if len(head) != _CENTRAL.size or head[:4] != b"PK\x01\x02":
            raise BundleRefused("the zip is not readable (damaged central directory)")
        _sig, name, extra, comment = _CENTRAL.unpack(head)
        entry = _CENTRAL.size + name + extra + comment
        if entry > CD_BYTES_PER_MEMBER:
            raise BundleRefused(f"the zip's central directory has an entry of {entry} bytes "
                                f"(member {count + 1}), more than a bundle's take")
        count += 1
        if count > MAX_FILES:
            raise too_many_files(count)
        archive.seek(name + extra + comment, os.SEEK_CUR)
        done += entry


def check_zip_members(members: list[zipfile.ZipInfo], archive_size: int) -> None:
    """STORED, unencrypted, unique, and together no larger than the archive itself."""
    if len(members) > MAX_FILES:
        raise too_many_files(len(members))
    seen: set[str] = set()
    total = 0
    for info in members:
        name = safe_text(info.filename)
        if info.filename in seen:
            raise BundleRefused(f"the zip holds {name} twice (a member name may appear once)")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise BundleRefused(f"{name} is encrypted; a bundle zip holds plain members")
        if info.compress_type != zipfile.ZIP_STORED:
            raise BundleRefused(f"{name} is compressed (method {info.compress_type}); Safehold "
                                "reads only uncompressed (stored) bundle zips: unzip it and "
                                "verify the folder, or zip it with `zip -r -0`")
        if info.compress_size != info.file_size:
            raise BundleRefused(f"{name} says it is stored but its sizes differ "
                                f"({info.compress_size} and {info.file_size} bytes)")
        total += info.file_size
    if total > archive_size:
        raise BundleRefused(f"the zip's members claim {total} bytes in an archive of "
                            f"{archive_size}: they overlap")
