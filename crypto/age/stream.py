"""The age payload: ChaCha20-Poly1305 STREAM in 64 KiB chunks (C2SP age, "Payload").

Chunk i is sealed with the nonce `i` (11 bytes, big-endian) || `0x01` if it is the last chunk
else `0x00`. Every chunk but the last is exactly 64 KiB of plaintext; the last may be shorter
or full, and is empty only when the whole payload is.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from crypto.age.keys import hkdf_sha256
from crypto.errors import PayloadError

CHUNK = 64 * 1024
TAG = 16
SEALED_CHUNK = CHUNK + TAG
NONCE_BYTES = 16
_MORE = b"\x00"
_LAST = b"\x01"


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return hkdf_sha256(file_key, nonce, b"payload")


def seal_payload(key: bytes, plaintext: bytes) -> list[bytes]:
    """The sealed chunks of `plaintext`, in order (join them after the 16-byte nonce)."""
    encrypt = ChaCha20Poly1305(key).encrypt
    view = memoryview(plaintext)  # slices without copying
    last = max(len(view) - 1, 0) // CHUNK
    parts = [
        encrypt(i.to_bytes(11, "big") + _MORE, view[i * CHUNK : (i + 1) * CHUNK], None)
        for i in range(last)
    ]
    parts.append(encrypt(last.to_bytes(11, "big") + _LAST, view[last * CHUNK :], None))
    return parts


class PayloadOpener:
    """Opens sealed chunks as they arrive; appends only authenticated plaintext to `out`.

    A partial chunk is held until it is complete or the input ends, because only then is it
    known whether it is the (possibly short) last chunk. A full chunk is opened as soon as it is
    complete, trying both end markers as the reference implementation does; which one
    authenticates says whether it was the last.
    """

    def __init__(self, key: bytes) -> None:
        self._decrypt = ChaCha20Poly1305(key).decrypt
        self._counter = 0
        self._pending = bytearray()
        self._ended = False

    def feed(self, data: bytes | memoryview, out: list[bytes]) -> None:
        view = memoryview(data)
        pos = 0
        if self._pending and len(view):
            pos = min(SEALED_CHUNK - len(self._pending), len(view))
            self._pending += view[:pos]
            if len(self._pending) == SEALED_CHUNK:
                chunk, self._pending = bytes(self._pending), bytearray()
                self._open_full(chunk, more_follows=pos < len(view), out=out)
        while len(view) - pos >= SEALED_CHUNK:
            self._open_full(view[pos : pos + SEALED_CHUNK], len(view) - pos > SEALED_CHUNK, out)
            pos += SEALED_CHUNK
        if pos < len(view):
            if self._ended:
                raise PayloadError("data continues after the final payload chunk")
            self._pending += view[pos:]

    def finish(self, out: list[bytes]) -> None:
        """The input has ended: open the held last chunk, or say why the payload is incomplete."""
        if self._ended:
            return
        if not self._pending:
            if self._counter == 0:
                raise PayloadError("payload is missing: the file ends after the header")
            raise PayloadError("payload is truncated: the final chunk is missing")
        if len(self._pending) == TAG and self._counter > 0:
            raise PayloadError("final payload chunk is empty (only an empty file may have one)")
        chunk, self._pending = bytes(self._pending), bytearray()
        try:
            out.append(self._decrypt(self._nonce(True), chunk, None))
        except InvalidTag:
            raise PayloadError(f"payload chunk {self._counter} failed authentication")
        self._ended = True

    def _nonce(self, last: bool) -> bytes:
        return self._counter.to_bytes(11, "big") + (_LAST if last else _MORE)

    def _open_full(self, chunk: bytes | memoryview, more_follows: bool, out: list[bytes]) -> None:
        if self._ended:
            raise PayloadError("data continues after the final payload chunk")
        # Try the likelier marker first; at most one of the two can authenticate.
        for last in (False, True) if more_follows else (True, False):
            try:
                plaintext = self._decrypt(self._nonce(last), chunk, None)
            except InvalidTag:
                continue
            out.append(plaintext)
            self._counter += 1
            self._ended = last
            return
        raise PayloadError(f"payload chunk {self._counter} failed authentication")
