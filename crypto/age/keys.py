"""age keys and stanzas: X25519 recipients/identities (Bech32) and scrypt passphrases.

Parsed keys are cached: a phone seals every chunk to the same few recipients and a legal-aid
tool opens hundreds of chunks with one identity, and Bech32 decoding plus the base-point
multiplication would otherwise cost as much as encrypting a small chunk.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crypto.age import bech32
from crypto.age.format import (
    SCRYPT_TYPE,
    X25519_TYPE,
    Stanza,
    b64decode_raw,
    b64encode_raw,
    scrypt_params,
)
from crypto.errors import MalformedError

Rng = Callable[[int], bytes]

IDENTITY_HRP = "AGE-SECRET-KEY-"
RECIPIENT_HRP = "age"
FILE_KEY_BYTES = 16
X25519_INFO = b"age-encryption.org/v1/X25519"
SCRYPT_SALT_LABEL = b"age-encryption.org/v1/scrypt"
ZERO_NONCE = bytes(12)
DEFAULT_MAX_WORK_FACTOR = 22


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-SHA-256 with a 32-byte output (one expand block)."""
    prk = hmac.digest(salt, ikm, "sha256")  # an empty salt equals HashLen zero bytes in HMAC
    return hmac.digest(prk, info + b"\x01", "sha256")


@lru_cache(maxsize=64)
def load_identity(identity: str) -> tuple[X25519PrivateKey, bytes]:
    """(private key, raw public key) of an `AGE-SECRET-KEY-1...` string."""
    if not isinstance(identity, str):
        raise MalformedError("an X25519 identity must be a string")
    hrp, secret = bech32.decode(identity)
    if hrp != IDENTITY_HRP or len(secret) != 32:
        raise MalformedError("not an age X25519 identity (AGE-SECRET-KEY-1...)")
    key = X25519PrivateKey.from_private_bytes(secret)
    return key, key.public_key().public_bytes_raw()


@lru_cache(maxsize=256)
def load_recipient(recipient: str) -> bytes:
    """Raw 32-byte public key of an `age1...` recipient string."""
    if not isinstance(recipient, str):
        raise MalformedError("an X25519 recipient must be a string")
    hrp, public = bech32.decode(recipient)
    if hrp != RECIPIENT_HRP or len(public) != 32:
        raise MalformedError(f"not an age X25519 recipient (age1...): {recipient[:16]!r}")
    return public


def generate_identity(rng: Rng) -> str:
    return bech32.encode(IDENTITY_HRP, rng(32))


def recipient_of(identity: str) -> str:
    return bech32.encode(RECIPIENT_HRP, load_identity(identity)[1])


def _aead_wrap(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(ZERO_NONCE, file_key, None)


def _aead_unwrap(key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def wrap_x25519(file_key: bytes, recipient: str, rng: Rng) -> Stanza:
    public = load_recipient(recipient)
    ephemeral = X25519PrivateKey.from_private_bytes(rng(32))
    share = ephemeral.public_key().public_bytes_raw()
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # all-zero shared secret: a low-order "public key"
        raise MalformedError("recipient is a low-order X25519 point")
    key = hkdf_sha256(shared, share + public, X25519_INFO)
    return Stanza(X25519_TYPE, (b64encode_raw(share).decode(),), _aead_wrap(key, file_key))


def unwrap_x25519(stanza: Stanza, identity: str) -> bytes | None:
    """The file key if this stanza is for `identity`, None if it is for someone else."""
    private, public = load_identity(identity)
    share = b64decode_raw(stanza.args[0].encode())
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:  # cryptography refuses the all-zero secret of a low-order share
        raise MalformedError("X25519 stanza share is a low-order point")
    return _aead_unwrap(hkdf_sha256(shared, share + public, X25519_INFO), stanza.body)


class Passphrase:
    """An identity that opens scrypt stanzas; refuses work factors above `max_work_factor`."""

    def __init__(self, passphrase: str, max_work_factor: int = DEFAULT_MAX_WORK_FACTOR) -> None:
        if not isinstance(passphrase, str) or not passphrase:
            raise MalformedError("a passphrase must be a non-empty string")
        self._secret = passphrase.encode("utf-8")
        self.max_work_factor = max_work_factor

    def __repr__(self) -> str:
        return f"Passphrase(<hidden>, max_work_factor={self.max_work_factor})"

    def derive(self, salt: bytes, log_n: int) -> bytes:
        kdf = Scrypt(salt=SCRYPT_SALT_LABEL + salt, length=32, n=1 << log_n, r=8, p=1)
        return kdf.derive(self._secret)


def wrap_scrypt(file_key: bytes, passphrase: Passphrase, work_factor: int, rng: Rng) -> Stanza:
    if not 1 <= work_factor <= passphrase.max_work_factor:
        raise MalformedError(f"scrypt work factor must be 1..{passphrase.max_work_factor}")
    salt = rng(16)
    key = passphrase.derive(salt, work_factor)
    args = (b64encode_raw(salt).decode(), str(work_factor))
    return Stanza(SCRYPT_TYPE, args, _aead_wrap(key, file_key))


def unwrap_scrypt(stanza: Stanza, passphrase: Passphrase) -> bytes | None:
    salt, log_n = scrypt_params(stanza)
    if log_n > passphrase.max_work_factor:
        # Checked before any work: a hostile file must not make us spend minutes or gigabytes.
        raise MalformedError(
            f"scrypt work factor {log_n} exceeds the limit {passphrase.max_work_factor}")
    return _aead_unwrap(passphrase.derive(salt, log_n), stanza.body)
