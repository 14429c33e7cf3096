"""Where chunk bodies live: one write-once interface, a local-disk driver and an S3 driver.

Every driver keeps the same promises, and tests/test_blobstore.py runs one suite over both:

- `put` returns only once the bytes are durable, and only if they hash to the digest the device
  signed; nothing is stored when they do not.
- A key is written once. The same bytes again are a no-op (so retries after a crash are safe);
  different bytes raise BlobConflict and the stored evidence stays as it was.
- Keys are relative paths of plain segments; anything that could escape the store is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # real imports for type checkers; at run time see __getattr__ at the end
    from server.blobs.local import LocalBlobStore
    from server.blobs.s3 import PresignedPut, S3BlobStore

__all__ = [
    "BlobConflict", "BlobDigestMismatch", "BlobMissing", "BlobRangeError", "BlobStore",
    "BlobStoreError", "BlobStoreUnavailable", "DigestedBytes", "InvalidBlobKey", "LocalBlobStore",
    "PresignedPut", "S3BlobStore", "check_digest", "check_digest_format", "chunk_key",
    "make_blob_store", "validate_key", "validate_range",
]


class BlobStoreError(Exception):
    """Base of every blob store failure."""


class BlobMissing(BlobStoreError):
    """No blob is stored under that key."""


class BlobConflict(BlobStoreError):
    """A different blob is already stored under that key; it was left untouched."""


class BlobDigestMismatch(BlobStoreError):
    """The bytes do not hash to the SHA-256 they were announced with; nothing was stored."""


class BlobRangeError(BlobStoreError):
    """The requested byte range starts beyond the blob's end."""


class BlobStoreUnavailable(BlobStoreError):
    """The storage backend failed (disk full, S3 unreachable, ...); retry later."""


class InvalidBlobKey(BlobStoreError, ValueError):
    """The key is not a safe relative path of plain segments."""


@runtime_checkable
class BlobStore(Protocol):
    def put(self, key: str, data: bytes, sha256_hex: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def get_range(self, key: str, start: int, end_inclusive: int) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


# Plain segments only: no "." or ".." (path escape), no leading dot (the local driver's temp files
# start with one, so a key can never name one), no backslash, NUL or other separators.
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_KEY_LENGTH = 512


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative key, else raise InvalidBlobKey."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidBlobKey(f"blob key must be 1..{MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidBlobKey(f"blob key {key!r} has an unsafe segment {segment!r}")
    return key


def validate_range(start: int, end_inclusive: int) -> None:
    if start < 0 or end_inclusive < start:
        raise ValueError(f"invalid byte range {start}-{end_inclusive}")


def check_digest_format(sha256_hex: str) -> None:
    if not isinstance(sha256_hex, str) or not _SHA256_HEX.fullmatch(sha256_hex):
        raise BlobDigestMismatch("expected a lowercase hex SHA-256 digest")


class DigestedBytes(bytes):
    """Bytes that carry their own SHA-256, computed when they were made.

    An upload is hashed once, to check it against the signed descriptor before anything is
    stored; handing the store these bytes spares hashing it again (a MiB costs ~0.6 ms). Bytes
    are immutable, so the digest stays true.
    """

    sha256_hex: str

    def __new__(cls, data: bytes) -> DigestedBytes:
        made = super().__new__(cls, data)
        made.sha256_hex = hashlib.sha256(made).hexdigest()
        return made


def check_digest(data: bytes, sha256_hex: str) -> str:
    """Raise BlobDigestMismatch unless `data` hashes to `sha256_hex`; return the digest."""
    check_digest_format(sha256_hex)
    actual = data.sha256_hex if type(data) is DigestedBytes else hashlib.sha256(data).hexdigest()
    if actual != sha256_hex:
        raise BlobDigestMismatch(f"body hashes to {actual}, not the announced {sha256_hex}")
    return actual


def chunk_key(encounter: str, stream: str, seq: int) -> str:
    """The agreed key of a chunk body: `encounters/<encounter>/<stream>/<seq 8 digits>.age`."""
    return validate_key(f"encounters/{encounter}/{stream}/{seq:08d}.age")


def make_blob_store(config: Mapping[str, Any]) -> BlobStore:
    """The driver named by config["BLOB_STORE"] ("local", the default, or "s3")."""
    kind = str(config.get("BLOB_STORE") or "local").lower()
    if kind == "local":
        from server.blobs.local import LocalBlobStore

        return LocalBlobStore(Path(config.get("DATA_DIR") or "./safehold-data") / "blobs")
    if kind == "s3":
        from server.blobs.s3 import S3BlobStore

        bucket = config.get("S3_BUCKET")
        if not bucket:
            raise ValueError("SAFEHOLD_BLOB_STORE=s3 needs SAFEHOLD_S3_BUCKET")
        return S3BlobStore(str(bucket), endpoint_url=config.get("S3_ENDPOINT_URL") or None)
    raise ValueError(f"SAFEHOLD_BLOB_STORE must be 'local' or 's3', not {kind!r}")


def __getattr__(name: str) -> Any:
    # The drivers import this module for the errors above, so they are re-exported lazily
    # (this also keeps boto3 out of processes that only use the local store).
    if name == "LocalBlobStore":
        from server.blobs.local import LocalBlobStore

        return LocalBlobStore
    if name in ("S3BlobStore", "PresignedPut"):
        from server.blobs import s3 as blobstore_s3

        return getattr(blobstore_s3, name)
    raise AttributeError(name)
