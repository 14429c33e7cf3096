"""Blob store on S3 (or anything speaking its API), for media at scale.

Every put carries `x-amz-checksum-sha256`, so S3 itself refuses bytes damaged in transit, and
`If-None-Match: *`, so S3 refuses to replace an existing object (write-once without a read
first, and without a race between two API servers). When S3 says the key exists, the stored
object is fetched and compared: same digest is a no-op, a different one is a BlobConflict.

The digest is also checked here before any request. That is deliberate: moto (our test S3) does
not verify x-amz-checksum-* values, so this check is what the test suite can prove.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from server.blobs.store import (
    BlobConflict,
    BlobDigestMismatch,
    BlobMissing,
    BlobRangeError,
    BlobStoreUnavailable,
    check_digest,
    check_digest_format,
    validate_key,
    validate_range,
)

_EXISTS = {"PreconditionFailed"}
_IN_PROGRESS = {"ConditionalRequestConflict"}  # S3: a concurrent conditional write is running
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class PresignedPut:
    """A URL a phone may PUT one chunk body to, straight to S3. Send exactly `headers`."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "PUT"


def b64_sha256(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    def __init__(self, bucket: str, *, endpoint_url: str | None = None, client: Any = None,
                 region_name: str | None = None) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._client = client
        self._client_pid = os.getpid() if client is not None else -1

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def client(self) -> Any:
        # A client made before gunicorn forks would share pooled sockets between workers.
        if self._client is None or self._client_pid != os.getpid():
            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region_name,
                config=Config(
                    signature_version="s3v4",  # v4 signs the pinned headers of presigned PUTs
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                    retries={"mode": "standard", "max_attempts": 4},
                    connect_timeout=5, read_timeout=30, max_pool_connections=32,
                ),
            )
            self._client_pid = os.getpid()
        return self._client

    def put(self, key: str, data: bytes, sha256_hex: str) -> None:
        validate_key(key)
        check_digest(data, sha256_hex)
        for attempt in range(4):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentLength=len(data),
                    ChecksumAlgorithm="SHA256", ChecksumSHA256=b64_sha256(sha256_hex),
                    IfNoneMatch="*",
                )
                return
            except ClientError as exc:
                code = error_code(exc)
                if code in _BAD_DIGEST:
                    raise BlobDigestMismatch(f"S3 refused {key}: {code}") from exc
                if code not in _EXISTS | _IN_PROGRESS:
                    raise BlobStoreUnavailable(f"S3 refused {key}: {exc}") from exc
            except BotoCoreError as exc:
                raise BlobStoreUnavailable(f"S3 unreachable storing {key}: {exc}") from exc
            try:
                self._judge_existing(key, sha256_hex)
                return
            except BlobMissing:  # deleted meanwhile, or a racing write not finished: retry
                time.sleep(0.05 * (attempt + 1))
        raise BlobStoreUnavailable(f"S3 kept refusing conditional writes to {key}")

    def get(self, key: str) -> bytes:
        return self._get_object(key)

    def get_range(self, key: str, start: int, end_inclusive: int) -> bytes:
        validate_range(start, end_inclusive)
        return self._get_object(key, Range=f"bytes={start}-{end_inclusive}")

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return False
            raise BlobStoreUnavailable(f"S3 refused HEAD {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"S3 unreachable: {exc}") from exc
        return True

    def size(self, key: str) -> int:
        """The stored object's length (HEAD), to refuse an oversized one before reading it."""
        validate_key(key)
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise BlobMissing(key) from exc
            raise BlobStoreUnavailable(f"S3 refused HEAD {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"S3 unreachable: {exc}") from exc
        return int(response["ContentLength"])

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreUnavailable(f"S3 refused DELETE {key}: {exc}") from exc

    def presign_put(self, key: str, size: int, sha256_hex: str,
                    expires: int = 900) -> PresignedPut:
        """A PUT URL pinned to this length, this SHA-256 and write-once, valid `expires` s.

        S3 refuses a request whose signed headers differ (SignatureDoesNotMatch), whose body
        does not match the checksum (BadDigest) or whose key exists (412). After the phone
        reports the upload, the API must still call `confirm_upload` before acknowledging.
        """
        validate_key(key)
        check_digest_format(sha256_hex)
        if size < 0:
            raise ValueError("size must be >= 0")
        checksum = b64_sha256(sha256_hex)
        url = self.client.generate_presigned_url(
            "put_object", HttpMethod="PUT", ExpiresIn=expires,
            Params={"Bucket": self.bucket, "Key": key, "ContentLength": size,
                    "ChecksumSHA256": checksum, "IfNoneMatch": "*"},
        )
        headers = {"Content-Length": str(size), "x-amz-checksum-sha256": checksum,
                   "If-None-Match": "*"}
        return PresignedPut(url=url, headers=headers)

    def confirm_upload(self, key: str, sha256_hex: str) -> None:
        """Check that what a presigned PUT stored hashes to `sha256_hex`.

        An object that does not match is no evidence of anything (the device signed another
        digest) and would block the honest upload forever, so it is deleted before raising.
        """
        data = self.get(key)
        try:
            check_digest(data, sha256_hex)
        except BlobDigestMismatch:
            self.delete(key)
            raise

    def _judge_existing(self, key: str, sha256_hex: str) -> None:
        stored = hashlib.sha256(self.get(key)).hexdigest()
        if stored != sha256_hex:
            raise BlobConflict(f"{key} already holds different bytes (sha256 {stored})")

    def _get_object(self, key: str, **extra: str) -> bytes:
        validate_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
            return bytes(response["Body"].read())
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING:
                raise BlobMissing(key) from exc
            if code == "InvalidRange":
                raise BlobRangeError(f"{key}: {extra.get('Range')} is beyond the end") from exc
            raise BlobStoreUnavailable(f"S3 refused GET {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"S3 unreachable reading {key}: {exc}") from exc

