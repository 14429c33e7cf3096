"""age v1 files (C2SP age spec) for Safehold chunks: the public face of the modules beside it.

Every chunk is a complete age file: X25519 stanzas for its readers, an optional
`safehold-slot` stanza naming its place (bound by the header MAC; stock age ignores it), the
HMAC'd header and the ChaCha20-Poly1305 STREAM payload. Byte formats: docs/protocol.md §1.

Decryption never hands out plaintext that has not passed its authentication tag. `decrypt`
returns all or nothing; the streaming `Decryptor` returns each chunk once its tag verifies, and
only `finalize()` returning normally says the file was complete and unaltered.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Sequence

from crypto.age.armor import ArmorDecoder, armor
from crypto.age.format import (
    MAGIC,
    MAX_HEADER_BYTES,
    SCRYPT_TYPE,
    X25519_TYPE,
    Header,
    Stanza,
    encode_header_without_mac,
    find_header_end,
    mac_line_suffix,
    parse_header,
    slot_stanza,
)
from crypto.age.keys import (
    FILE_KEY_BYTES,
    IDENTITY_HRP,
    Passphrase,
    Rng,
    hkdf_sha256,
    load_identity,
    load_recipient,
    unwrap_scrypt,
    unwrap_x25519,
    wrap_scrypt,
    wrap_x25519,
)
from crypto.age.keys import generate_identity as _generate_identity
from crypto.age.keys import recipient_of as _recipient_of
from crypto.age.stream import NONCE_BYTES, PayloadOpener, payload_key, seal_payload
from crypto.errors import CryptoError, HeaderMacError, MalformedError, NoIdentityMatched
from crypto.slot import Slot

__all__ = [
    "Decryptor", "Header", "Identity", "Passphrase", "Rng", "Slot", "Stanza", "decrypt",
    "decrypt_chunk", "encrypt", "encrypt_with_passphrase", "generate_identity",
    "parse_identity_file", "read_header", "read_slot", "recipient_of", "validate_recipient",
    "x25519_stanza_count",
]

Identity = str | Passphrase
DEFAULT_WORK_FACTOR = 18  # what `age -p` uses


def generate_identity(rng: Rng = os.urandom) -> str:
    """A new X25519 identity, `AGE-SECRET-KEY-1...`."""
    return _generate_identity(rng)


def recipient_of(identity: str) -> str:
    """The `age1...` recipient of an X25519 identity."""
    return _recipient_of(identity)


def validate_recipient(recipient: str) -> str:
    """Return `recipient` if it is a valid `age1...` X25519 recipient; else MalformedError."""
    load_recipient(recipient)
    return recipient


def parse_identity_file(text: str) -> list[str]:
    """The identities of an age identity file; `#` comments and blank lines are skipped."""
    identities = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(IDENTITY_HRP + "1"):
            raise MalformedError(f"identity file line {number} is not an AGE-SECRET-KEY-1 key")
        load_identity(line)
        identities.append(line)
    if not identities:
        raise MalformedError("identity file contains no identities")
    return identities


def _random(rng: Rng, size: int) -> bytes:
    value = rng(size)
    if not isinstance(value, bytes) or len(value) != size:
        raise MalformedError(f"random source returned something other than {size} bytes")
    return value


def _header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return hmac.digest(hkdf_sha256(file_key, b"", b"header"), mac_input, "sha256")


def _seal(file_key: bytes, stanzas: list[Stanza], plaintext: bytes, armored: bool,
          rng: Rng) -> bytes:
    head = encode_header_without_mac(stanzas)
    nonce = _random(rng, NONCE_BYTES)
    chunks = seal_payload(payload_key(file_key, nonce), plaintext)
    data = b"".join([head, mac_line_suffix(_header_mac(file_key, head)), nonce, *chunks])
    return armor(data) if armored else data


def encrypt(plaintext: bytes, recipients: Sequence[str], *, slot: Slot | None = None,
            armor: bool = False, rng: Rng = os.urandom) -> bytes:
    """An age file readable by each `age1...` recipient, with the slot stanza if given."""
    if isinstance(recipients, str) or not recipients:
        raise MalformedError("encrypt needs a non-empty sequence of age1... recipients")
    if slot is not None and not isinstance(slot, Slot):
        raise MalformedError("slot must be a crypto.slot.Slot")
    file_key = _random(rng, FILE_KEY_BYTES)
    stanzas = [slot_stanza(slot)] if slot is not None else []
    stanzas += [wrap_x25519(file_key, recipient, rng) for recipient in recipients]
    return _seal(file_key, stanzas, plaintext, armor, rng)


def encrypt_with_passphrase(plaintext: bytes, passphrase: str, *,
                            work_factor: int = DEFAULT_WORK_FACTOR, armor: bool = False,
                            rng: Rng = os.urandom) -> bytes:
    """An age file with one scrypt stanza (log2 N = work_factor), as `age -p` makes."""
    file_key = _random(rng, FILE_KEY_BYTES)
    stanza = wrap_scrypt(file_key, Passphrase(passphrase), work_factor, rng)
    return _seal(file_key, [stanza], plaintext, armor, rng)


def _check_identities(identities: Sequence[Identity]) -> tuple[Identity, ...]:
    if isinstance(identities, (str, Passphrase)):
        raise MalformedError("identities must be a sequence (a list of keys or passphrases)")
    for identity in identities:
        if not isinstance(identity, Passphrase):
            load_identity(identity)  # a bad key string is the caller's error, said up front
    return tuple(identities)


def _unwrap_file_key(stanzas: tuple[Stanza, ...], identities: tuple[Identity, ...]) -> bytes:
    for identity in identities:
        for stanza in stanzas:
            file_key = None
            if isinstance(identity, Passphrase):
                if stanza.type == SCRYPT_TYPE:
                    file_key = unwrap_scrypt(stanza, identity)
            elif stanza.type == X25519_TYPE:
                file_key = unwrap_x25519(stanza, identity)
            if file_key is not None:
                return file_key
    if any(s.type == SCRYPT_TYPE for s in stanzas):
        raise NoIdentityMatched("wrong passphrase, or no passphrase given for this file")
    raise NoIdentityMatched("none of the given identities can open this file")


def _looks_binary(data: bytes) -> bool:
    return data.startswith(MAGIC) or MAGIC.startswith(data)


class Decryptor:
    """Streaming decryption in constant memory; binary or armored input, like `age -d`.

    `update(data)` returns the plaintext of every chunk whose tag has verified so far. If it
    meets an error after some authenticated plaintext, it returns that plaintext and raises the
    error from the next call; errors are sticky. `finalize()` returns the last chunk and
    raises if the file was truncated, extended or altered anywhere. `slot` and `header` are set
    once the header MAC has verified.
    """

    def __init__(self, identities: Sequence[Identity]) -> None:
        self._identities = _check_identities(identities)
        self._lead = b""  # first bytes, until binary-or-armor is decided
        self._armor: ArmorDecoder | None = None
        self._decided = False
        self._head = bytearray()
        self._nonce = b""
        self._file_key: bytes | None = None
        self._payload: PayloadOpener | None = None
        self._error: CryptoError | None = None
        self._finished = False
        self.header: Header | None = None
        self.slot: Slot | None = None

    def update(self, data: bytes) -> bytes:
        return b"".join(self._guarded(lambda out: self._feed(data, out)))

    def finalize(self) -> bytes:
        out = self._guarded(self._finish)
        self._finished = True
        return b"".join(out)

    def _guarded(self, step: Callable[[list[bytes]], None]) -> list[bytes]:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise MalformedError("this Decryptor has already been finalized")
        out: list[bytes] = []
        try:
            step(out)
        except CryptoError as exc:
            self._error = exc
            if not out:
                raise
        return out

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)
        if not self._decided:
            data = self._lead + data if self._lead else data
            if len(data) < len(MAGIC) and MAGIC.startswith(data):
                self._lead = data
                return
            self._lead, self._decided = b"", True
            if not data.startswith(MAGIC):
                self._armor = ArmorDecoder()
        if self._armor is not None:
            data = self._armor.update(data)
        self._feed_binary(data, out)

    def _finish(self, out: list[bytes]) -> None:
        if not self._decided:
            self._decided = True
            self._feed_binary(self._lead, out)
        if self._armor is not None:
            self._feed_binary(self._armor.finalize(), out)
        if self._payload is None:
            if self._file_key is None:
                parse_header(bytes(self._head))  # raises with the reason the header is bad
            raise MalformedError("file ends before the payload nonce")
        self._payload.finish(out)

    def _feed_binary(self, data: bytes | memoryview, out: list[bytes]) -> None:
        payload = self._payload
        if payload is None:
            started = self._feed_header(bytes(data))
            if started is None:
                return
            payload, data = started
        payload.feed(data, out)

    def _feed_header(self, data: bytes) -> tuple[PayloadOpener, memoryview] | None:
        """Collect the header and nonce; once both are in, start the payload."""
        file_key = self._file_key
        if file_key is None:
            found = self._collect_header(data)
            if found is None:
                return None
            header_bytes, view = found
            file_key = self._open_header(header_bytes)
        else:
            view = memoryview(data)
        need = NONCE_BYTES - len(self._nonce)
        self._nonce += bytes(view[:need])
        if len(self._nonce) < NONCE_BYTES:
            return None
        self._payload = PayloadOpener(payload_key(file_key, self._nonce))
        return self._payload, view[need:]

    def _collect_header(self, data: bytes) -> tuple[bytes, memoryview] | None:
        """(header bytes, what follows) once the MAC line is in; copies only a split header."""
        buf: bytes | bytearray = data
        searched = 0
        if self._head:
            searched = len(self._head)
            self._head += data
            buf = self._head
        end = find_header_end(buf, searched)
        if end < 0 or end > MAX_HEADER_BYTES:
            if len(buf) > MAX_HEADER_BYTES:
                raise MalformedError("age header is too long (or this is not an age file)")
            if buf is data:
                self._head += data
            return None
        view = memoryview(buf)
        self._head = bytearray()
        return bytes(view[:end]), view[end:]

    def _open_header(self, header_bytes: bytes) -> bytes:
        header = parse_header(header_bytes)
        file_key = _unwrap_file_key(header.stanzas, self._identities)
        if not hmac.compare_digest(_header_mac(file_key, header.mac_input), header.mac):
            raise HeaderMacError("age header MAC does not match: the header was altered")
        self._file_key, self.header, self.slot = file_key, header, header.slot
        return file_key


def _decrypt(ciphertext: bytes, identities: Sequence[Identity]) -> tuple[bytes, Slot | None]:
    decryptor = Decryptor(identities)
    out: list[bytes] = []
    decryptor._feed(ciphertext, out)
    decryptor._finish(out)
    return b"".join(out), decryptor.slot


def decrypt(ciphertext: bytes, identities: Sequence[Identity]) -> bytes:
    """The whole plaintext, or a CryptoError and nothing; binary or armored input."""
    return _decrypt(ciphertext, identities)[0]


def decrypt_chunk(ciphertext: bytes, identities: Sequence[Identity]) -> tuple[bytes, Slot | None]:
    """Plaintext and the slot, which (unlike read_slot's) the header MAC has authenticated."""
    return _decrypt(ciphertext, identities)


def read_header(ciphertext: bytes) -> Header:
    """Parse the header without a key (binary or armored input); MalformedError if not age.

    Nothing here is authenticated: only decryption verifies the header MAC. For armored input
    `header_bytes` and `payload_offset` refer to the binary file inside the armor.
    """
    data = bytes(ciphertext)
    if not _looks_binary(data):
        decoder = ArmorDecoder()
        data = decoder.update(data) + decoder.finalize()
    return parse_header(data)


def read_slot(ciphertext: bytes) -> Slot | None:
    """The (unauthenticated) slot stanza of an age file, or None; no key needed."""
    return read_header(ciphertext).slot


def x25519_stanza_count(header: Header) -> int:
    return sum(1 for stanza in header.stanzas if stanza.type == X25519_TYPE)
