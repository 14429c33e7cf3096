"""Blob store on a local POSIX file system (the embedded default).

A put writes a temp file in the blob's own folder, fsyncs it, then hard-links it to its final
name. link(2), unlike rename(2), fails when the name exists, so two racing writers (or a retry
racing the original) can never replace a stored blob: the loser compares digests instead. The
folder is fsynced before put returns, so an acknowledged chunk survives power loss. A crash
leaves at most an orphaned `.tmp-*` file, never a partial blob under a real key.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

from server.blobs.store import (
    BlobConflict,
    BlobMissing,
    BlobRangeError,
    BlobStoreUnavailable,
    check_digest,
    validate_key,
    validate_range,
)

TEMP_PREFIX = ".tmp-"  # keys can't start a segment with ".", so never collides with a blob


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes, sha256_hex: str) -> None:
        path = self.path_of(key)
        check_digest(data, sha256_hex)
        try:
            if not self._same_blob_stored(path, sha256_hex):
                self._store_new(path, data, sha256_hex)
        except OSError as exc:  # disk full, permissions, I/O error: nothing was acknowledged
            raise BlobStoreUnavailable(f"could not store {key}: {exc}") from exc

    def _store_new(self, path: Path, data: bytes, sha256_hex: str) -> None:
        self._make_dirs(path.parent)
        temp = self._write_temp(path.parent, data)
        try:
            os.link(temp, path)
            linked = True
        except FileExistsError:
            linked = False  # a concurrent writer got there first; judged below
        finally:
            os.unlink(temp)
        if linked:
            fsync_dir(path.parent)
        elif not self._same_blob_stored(path, sha256_hex):
            raise BlobStoreUnavailable(f"{path} was deleted while being written; retry")

    def get(self, key: str) -> bytes:
        path = self.path_of(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobMissing(key)

    def get_range(self, key: str, start: int, end_inclusive: int) -> bytes:
        validate_range(start, end_inclusive)
        try:
            with self.path_of(key).open("rb") as blob:
                size = os.fstat(blob.fileno()).st_size
                if start >= size:
                    raise BlobRangeError(f"range starts at {start}, blob has {size} bytes")
                blob.seek(start)
                return blob.read(min(end_inclusive, size - 1) - start + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobMissing(key)

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def delete(self, key: str) -> None:
        path = self.path_of(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def sweep_temp_files(self, older_than_seconds: float = 3600.0) -> int:
        """Remove temp files orphaned by a crash mid-put; returns how many were removed.

        Only old ones: a young temp file may belong to a put that is still running.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for temp in self.root.rglob(TEMP_PREFIX + "*"):
            try:
                if temp.is_file() and temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _same_blob_stored(self, path: Path, sha256_hex: str) -> bool:
        """False if nothing is stored; True if these bytes are; BlobConflict if others are."""
        try:
            stored = hashlib.sha256(path.read_bytes()).hexdigest()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except IsADirectoryError:
            raise BlobConflict(f"{path.relative_to(self.root)} is a folder of other blobs")
        if stored != sha256_hex:
            raise BlobConflict(f"{path.relative_to(self.root)} holds different bytes")
        # Another writer may not have fsynced the folder yet; don't acknowledge before it is.
        fsync_dir(path.parent)
        return True

    def _make_dirs(self, folder: Path) -> None:
        """Create missing folders below the root, fsyncing each new entry's parent."""
        missing = []
        while folder != self.root and not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            try:
                new.mkdir(mode=0o700, exist_ok=True)
            except FileExistsError:  # a blob sits where this key needs a folder
                raise BlobConflict(f"{new.relative_to(self.root)} is a blob, not a folder")
            fsync_dir(new.parent)

    @staticmethod
    def _write_temp(folder: Path, data: bytes) -> Path:
        temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return temp
