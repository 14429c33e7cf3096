"""The bundle: an encounter's evidence as files, in a folder or the same folder zipped.

A bundle holds everything needed to check and open a recording offline (layout in
docs/protocol.md, section "Bundles"). The writer is used by `safehold fetch`; the reader by
`verify` and `decrypt`, which must work on a folder or a zip alike, and from several threads at
once (each chunk is read independently).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sync.bundle.limits import (  # BundleError, BundleRefused: the reader's errors
    KIB,
    MAX_FILES,
    MAX_LINE,
    BundleError,
    BundleRefused,
    check_folder,
    check_name,
    check_sizes,
    check_zip_directory,
    check_zip_members,
    chunk_count,
    size_limit,
    too_many_files,
)
from sync.safetext import safe_text

FORMAT = "safehold-bundle/v1"
MANIFEST = "manifest.json"
LEAVES = "log/leaves.jsonl"
CHECKPOINT = "log/checkpoint.note"
CONSISTENCY = "log/consistency.jsonl"
ACCESS = "access.jsonl"
# Written by `fetch` before its first download and removed after the manifest (written last):
# a folder holding it and no manifest is an interrupted download of the encounter it names.
FETCHING = ".safehold-fetching.json"
CHUNKS = "chunks"
AGE_SUFFIX = ".age"
DESCRIPTOR_SUFFIX = ".descriptor"
RECEIPT_SUFFIX = ".receipt.json"
GRANT_SUFFIX = ".grant.json"  # a re-wrapped chunk of a one-encounter share (docs/protocol.md)
READ_BLOCK = 1 << 20

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# chunks/<stream>/<seq, at least 8 digits>.<kind>; the stream pattern is the slot's.
_CHUNK_NAME = re.compile(
    r"chunks/([a-z][a-z0-9_-]{0,31})/([0-9]{8,10})(\.age|\.descriptor|\.receipt\.json|\.grant\.json)"
)


def seq_name(seq: int) -> str:
    """The file stem of a chunk: its seq as at least 8 decimal digits."""
    return f"{seq:08d}"


def chunk_path(stream: str, seq: int, suffix: str) -> str:
    """The bundle-relative path of one of a chunk's files (suffix: .age/.descriptor/...)."""
    return f"{CHUNKS}/{stream}/{seq_name(seq)}{suffix}"


@dataclass
class ChunkEntry:
    """The files found in a bundle for one (stream, seq) place; any of them may be absent."""

    stream: str
    seq: int
    files: dict[str, str] = field(default_factory=dict)  # suffix -> relative path

    @property
    def age(self) -> str:
        return chunk_path(self.stream, self.seq, AGE_SUFFIX)

    @property
    def descriptor(self) -> str:
        return chunk_path(self.stream, self.seq, DESCRIPTOR_SUFFIX)

    @property
    def receipt(self) -> str:
        return chunk_path(self.stream, self.seq, RECEIPT_SUFFIX)


def parse_chunk_name(name: str) -> tuple[str, int, str] | None:
    """(stream, seq, suffix) for a canonical chunk file name, else None."""
    match = _CHUNK_NAME.fullmatch(name)
    if not match:
        return None
    stream, digits, suffix = match.groups()
    seq = int(digits)
    if seq_name(seq) != digits or seq >= 2**32:  # one spelling per seq, no aliases
        return None
    return stream, seq, suffix


def file_digest(stream: IO[bytes]) -> tuple[str, int]:
    """SHA-256 (hex) and length of a stream, read in blocks (constant memory)."""
    hasher = hashlib.sha256()
    size = 0
    while block := stream.read(READ_BLOCK):
        hasher.update(block)
        size += len(block)
    return hasher.hexdigest(), size


class BundleReader:
    """Read-only access to a bundle folder or zip. Safe to use from several threads.

    The whole table of contents is checked when the reader is made (sync/bundle/limits.py):
    a bundle that breaks the layout or the limits raises BundleRefused before anything in it
    is read, and every later read is bounded by its file's limit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._zip_lock = threading.Lock()
        self._prefix = ""  # a zip made of the folder itself holds "<folder>/manifest.json"
        self._root = str(path)
        try:
            if path.is_dir():
                sizes = self._folder_sizes(path)
            elif path.is_file() and zipfile.is_zipfile(path):
                sizes = self._open_zip(path)
            elif path.exists():
                raise BundleError(f"{path} is neither a bundle folder nor a zip file")
            else:
                raise BundleError(f"{path} does not exist")
            check_sizes(sizes)
            if MANIFEST not in sizes and FETCHING in sizes:
                again = f"safehold fetch {self._marker_encounter(sizes) or 'ENCOUNTER'} -o {path}"
                raise BundleError(f"{path} is an incomplete download: run the same fetch again "
                                  f"({again})")
            if MANIFEST not in sizes:
                raise BundleError(f"{path} is not a Safehold bundle: it has no {MANIFEST}")
            sizes.pop(FETCHING, None)  # left by a fetch stopped after its manifest: not evidence
        except BundleError as exc:
            self.close()
            if isinstance(exc, BundleRefused):
                raise BundleRefused(f"{path} was refused: {exc}") from None
            raise
        self._names = set(sizes)
        self._chunks = chunk_count(self._names)

    def _marker_encounter(self, sizes: dict[str, int]) -> str | None:
        """The encounter an interrupted fetch's marker names, if it is a well-formed id."""
        if sizes[FETCHING] > 4 * KIB or self._zip is not None:
            return None
        try:
            value = json.loads((self.path / FETCHING).read_bytes()).get("encounter_id")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) and _UUID.fullmatch(value) else None

    @staticmethod
    def _folder_sizes(root: Path) -> dict[str, int]:
        """name -> size of every file, walking only the folders of the layout."""
        sizes: dict[str, int] = {}
        pending = [("", str(root))]
        while pending:
            prefix, folder = pending.pop()
            with os.scandir(folder) as entries:
                for entry in entries:
                    # A bundle's files are its own: symbolic links are never followed.
                    if entry.is_dir(follow_symlinks=False):
                        check_folder(prefix + entry.name)
                        pending.append((f"{prefix}{entry.name}/", entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        check_name(prefix + entry.name)
                        sizes[prefix + entry.name] = entry.stat(follow_symlinks=False).st_size
                        if len(sizes) > MAX_FILES:
                            raise too_many_files(len(sizes))
        return sizes

    def _open_zip(self, path: Path) -> dict[str, int]:
        check_zip_directory(str(path))  # before zipfile reads the directory into memory
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise BundleRefused(f"the zip is not readable ({safe_text(str(exc))})")
        members = self._zip.infolist()
        check_zip_members(members, os.path.getsize(path))
        files = [info for info in members if not info.is_dir()]
        names = [info.filename for info in files]
        self._prefix = self._zip_prefix(names)
        for info in members:
            if info.is_dir():
                if info.file_size:
                    raise BundleRefused(f"{safe_text(info.filename)} is a folder with content")
                folder = info.filename.rstrip("/")
                if folder + "/" != self._prefix:
                    check_folder(folder.removeprefix(self._prefix))
            else:
                check_name(info.filename.removeprefix(self._prefix))
        return {info.filename.removeprefix(self._prefix): info.file_size for info in files}

    @staticmethod
    def _zip_prefix(names: list[str]) -> str:
        """The single top-level folder every member lies in (`zip -r -0 case.zip case/`), if the
        zip has no manifest at its root; else ""."""
        if MANIFEST in names or not names:
            return ""
        tops = {name.split("/", 1)[0] for name in names}
        prefix = tops.pop() + "/" if len(tops) == 1 else ""
        return prefix if prefix + MANIFEST in names else ""

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def names(self) -> list[str]:
        """Every file in the bundle, as sorted POSIX paths relative to its root."""
        return sorted(self._names)

    def exists(self, name: str) -> bool:
        return name in self._names

    def _safe(self, name: str) -> str:
        # Only names found inside the bundle are opened; none of them can climb out of it.
        if name not in self._names or name.startswith("/") or ".." in name.split("/"):
            raise FileNotFoundError(f"{name} is not in the bundle {self.path}")
        return name

    def open(self, name: str) -> IO[bytes]:
        """A binary stream of one file; the caller closes it."""
        name = self._safe(name)
        if self._zip is not None:
            with self._zip_lock:
                return self._zip.open(self._prefix + name)
        return open(os.path.join(self._root, name), "rb")  # noqa: SIM115 - the caller closes

    def limit(self, name: str) -> int:
        """The most bytes `name` may have (sync/bundle/limits.py)."""
        return size_limit(name, self._chunks)

    def read_bytes(self, name: str) -> bytes:
        """A whole file, never more than its limit (a folder's file may grow after the check)."""
        limit = self.limit(name)
        with self.open(name) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise BundleRefused(f"{self.path} was refused: {safe_text(name)} has more than the "
                                f"{limit} bytes a bundle file of its kind may have")
        return data

    def read_text(self, name: str) -> str:
        """A small text file, decoded strictly as UTF-8 (UnicodeDecodeError if not)."""
        return self.read_bytes(name).decode("utf-8")

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_text(name))

    def read_jsonl(self, name: str) -> Iterator[tuple[int, Any]]:
        """(line number from 1, parsed object) for each non-empty line; a line longer than
        MAX_LINE, or a file longer than its limit, is a ValueError (reported, not read)."""
        limit, total = self.limit(name), 0
        with self.open(name) as stream:
            number = 0
            while raw := stream.readline(MAX_LINE + 1):
                number += 1
                total += len(raw)
                if len(raw) > MAX_LINE:
                    raise ValueError(f"line {number} is longer than {MAX_LINE} bytes")
                if total > limit:
                    raise ValueError(f"it is longer than the {limit} bytes it may have")
                line = raw.decode("utf-8").strip()
                if line:
                    yield number, json.loads(line)

    def size(self, name: str) -> int:
        name = self._safe(name)
        if self._zip is not None:
            return self._zip.getinfo(self._prefix + name).file_size
        return os.stat(os.path.join(self._root, name)).st_size

    def digest(self, name: str) -> tuple[str, int]:
        with self.open(name) as stream:
            return file_digest(stream)

    def chunk_entries(self) -> tuple[list[ChunkEntry], list[str]]:
        """The chunk places found under chunks/, sorted, and the names there that are not chunks."""
        entries: dict[tuple[str, int], ChunkEntry] = {}
        strays = []
        for name in self.names():
            if not name.startswith(CHUNKS + "/"):
                continue
            parsed = parse_chunk_name(name)
            if parsed is None:
                strays.append(name)
                continue
            stream, seq, suffix = parsed
            entries.setdefault((stream, seq), ChunkEntry(stream, seq)).files[suffix] = name
        return [entries[key] for key in sorted(entries)], strays

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(records: Iterable[Any]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()


class BundleWriter:
    """Writes a bundle folder file by file; every file appears whole or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, name: str) -> Path:
        return self.root / name

    def write_bytes(self, name: str, data: bytes) -> None:
        _write_atomic(self.root / name, data)

    def write_json(self, name: str, value: Any) -> None:
        self.write_bytes(name, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.write_json(MANIFEST, {"format": FORMAT, **manifest})

    def begin_fetch(self, encounter_id: str) -> None:
        """Mark the folder as a download of `encounter_id` under way (before any other file)."""
        self.write_json(FETCHING, {"encounter_id": encounter_id})

    def end_fetch(self) -> None:
        """The manifest is written: the download is complete."""
        self.path_of(FETCHING).unlink(missing_ok=True)

    def write_chunk(self, stream: str, seq: int, age_file: bytes, descriptor_note: str,
                    receipt: dict[str, Any]) -> None:
        """All three files of a chunk; the age file last so its presence means 'complete'."""
        self.write_bytes(chunk_path(stream, seq, DESCRIPTOR_SUFFIX), descriptor_note.encode())
        self.write_json(chunk_path(stream, seq, RECEIPT_SUFFIX), receipt)
        self.write_bytes(chunk_path(stream, seq, AGE_SUFFIX), age_file)

    def write_leaves(self, leaves: Iterable[dict[str, Any]]) -> None:
        self.write_bytes(LEAVES, _jsonl(leaves))

    def write_checkpoint(self, note: str) -> None:
        self.write_bytes(CHECKPOINT, note.encode())

    def write_consistency(self, proofs: Iterable[dict[str, Any]]) -> None:
        self.write_bytes(CONSISTENCY, _jsonl(proofs))

    def write_access(self, entries: Iterable[dict[str, Any]]) -> None:
        self.write_bytes(ACCESS, _jsonl(entries))


def zip_bundle(folder: Path, zip_path: Path) -> None:
    """The same folder as one zip (stored, not compressed: age files do not compress)."""
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in sorted(BundleReader._folder_sizes(folder)):
            if Path(name).name.startswith("."):  # temp files of an interrupted fetch
                continue
            archive.write(folder / name, name)
    os.replace(tmp, zip_path)
