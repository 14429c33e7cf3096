"""Short invitation codes a person can read aloud, made safe by SPAKE2 (pure: no I/O).

A short code is `<nameplate>-<word>-<word>`, e.g. `417-guitarist-revenge`: the nameplate is a
number the server allocates (it routes the two sides to one mailbox); the words are 16 random
bits from the PGP word list (crypto/pgp_words.py; odd list first, then even, as
magic-wormhole does). The whole code,
normalised, makes the SPAKE2 password ("safehold.pake-words/v1 " + the words joined by one
space) and the nameplate is bound by the transcript, so a relay that does not know the words
gets one online guess per code and nothing to test offline.

Exchange (python-spake2 0.9, Ed25519 group, asymmetric: the owner is side A, the contact B):

    msg_A, msg_B   = 33 bytes each (side byte + group element), relayed by the server
    K              = SPAKE2 key (32 bytes)
    transcript     = "safehold.pake/v1\\n" <nameplate> "\\n" msg_A msg_B
    K_purpose      = HKDF-SHA256(ikm = K, salt = SHA-256(transcript), info = purpose)
    confirm_B      = HMAC-SHA256(K_"safehold pake contact confirm v1", transcript)
    confirm_A      = HMAC-SHA256(K_"safehold pake owner confirm v1", transcript)
    sealed         = nonce (12 random bytes) || ChaCha20-Poly1305(K_"safehold pake payload v1",
                                                  nonce, payload, aad = transcript)

The contact sends confirm_B with msg_B; the owner checks it before anything else, so a wrong
code (or a substituted or replayed message) is found before any secret leaves the owner's
device. Only then does the owner send confirm_A and the sealed payload (the long invitation).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from spake2 import SPAKE2_A, SPAKE2_B
from spake2.spake2 import SPAKEError

from crypto.age.keys import hkdf_sha256
from crypto.errors import AuthenticationError, MalformedError
from crypto.pgp_words import EVEN, ODD

Rng = Callable[[int], bytes]
WORDS = 2
ID_OWNER = b"safehold owner v1"
ID_CONTACT = b"safehold contact v1"
MESSAGE_BYTES = 33
CONFIRM_BYTES = 32
NONCE_BYTES = 12
MAX_PAYLOAD = 4096
_NAMEPLATE = re.compile(r"[1-9][0-9]{0,5}")
_EVEN_INDEX = {w: i for i, w in enumerate(EVEN)}
_ODD_INDEX = {w: i for i, w in enumerate(ODD)}


class ConfirmationFailed(AuthenticationError):
    """The other side's confirmation MAC does not match: wrong code, or messages changed."""


def check_nameplate(value: object) -> str:
    if not isinstance(value, str) or not _NAMEPLATE.fullmatch(value):
        raise MalformedError("a nameplate is a number from 1 to 999999 without leading zeros")
    return value


@dataclass(frozen=True)
class ShortCode:
    nameplate: str
    words: tuple[str, ...]

    def text(self) -> str:
        return "-".join((self.nameplate, *self.words))

    def password(self) -> bytes:
        """The words only: the nameplate is public routing, bound by the transcript instead
        (the server allocates it in the same request that carries the owner's message)."""
        return ("safehold.pake-words/v1 " + " ".join(self.words)).encode("ascii")

    @classmethod
    def parse(cls, text: str) -> ShortCode:
        """Forgiving as speech is: case, surrounding whitespace, spaces for dashes."""
        parts = re.split(r"[\s-]+", text.strip().lower()) if isinstance(text, str) else []
        if len(parts) != 1 + WORDS:
            raise MalformedError(f"a short code is <number>-<word>-<word>, got {len(parts)} "
                                 "parts")
        nameplate, words = check_nameplate(parts[0]), tuple(parts[1:])
        for i, word in enumerate(words):
            if word not in (_ODD_INDEX if i % 2 == 0 else _EVEN_INDEX):
                raise MalformedError(f"{word!r} is not a word of the code's word list")
        return cls(nameplate, words)


def looks_short(text: str) -> bool:
    """Does `text` look like a short code (rather than a long `<id>.<secret>` one)?"""
    return isinstance(text, str) and bool(re.fullmatch(r"\s*[0-9]+([\s-]+[A-Za-z]+)+\s*", text))


def new_short_code(nameplate: str, rng: Rng = os.urandom) -> ShortCode:
    data = rng(WORDS)
    return ShortCode(check_nameplate(nameplate),
                     tuple((ODD if i % 2 == 0 else EVEN)[b] for i, b in enumerate(data)))


def _transcript(nameplate: str, msg_a: bytes, msg_b: bytes) -> bytes:
    return b"safehold.pake/v1\n" + nameplate.encode("ascii") + b"\n" + msg_a + msg_b


def _check_message(message: object, side: bytes) -> bytes:
    if not isinstance(message, bytes) or len(message) != MESSAGE_BYTES or message[:1] != side:
        raise MalformedError(f"a PAKE message is {MESSAGE_BYTES} bytes from side {side!r}")
    return message


@dataclass(frozen=True)
class SessionKeys:
    """What both sides derive from the SPAKE2 key and the transcript."""

    transcript: bytes
    owner_confirm_key: bytes
    contact_confirm_key: bytes
    payload_key: bytes

    def contact_confirm(self) -> bytes:
        return hmac.digest(self.contact_confirm_key, self.transcript, "sha256")

    def owner_confirm(self) -> bytes:
        return hmac.digest(self.owner_confirm_key, self.transcript, "sha256")

    def check_contact_confirm(self, mac: bytes) -> None:
        if not hmac.compare_digest(self.contact_confirm(), mac):
            raise ConfirmationFailed("the contact's confirmation does not match this code")

    def check_owner_confirm(self, mac: bytes) -> None:
        if not hmac.compare_digest(self.owner_confirm(), mac):
            raise ConfirmationFailed("the owner's confirmation does not match this code")

    def seal(self, payload: bytes, rng: Rng = os.urandom) -> bytes:
        if len(payload) > MAX_PAYLOAD:
            raise MalformedError(f"a PAKE payload is at most {MAX_PAYLOAD} bytes")
        nonce = rng(NONCE_BYTES)
        return nonce + ChaCha20Poly1305(self.payload_key).encrypt(nonce, payload,
                                                                   self.transcript)

    def open(self, sealed: bytes) -> bytes:
        try:
            return ChaCha20Poly1305(self.payload_key).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self.transcript)
        except (InvalidTag, ValueError):
            raise ConfirmationFailed("the sealed invitation does not open under this code")


def session_keys(key: bytes, nameplate: str, msg_a: bytes, msg_b: bytes) -> SessionKeys:
    transcript = _transcript(nameplate, msg_a, msg_b)
    salt = hashlib.sha256(transcript).digest()

    def derive(purpose: bytes) -> bytes:
        return hkdf_sha256(key, salt, purpose)

    return SessionKeys(transcript, derive(b"safehold pake owner confirm v1"),
                       derive(b"safehold pake contact confirm v1"),
                       derive(b"safehold pake payload v1"))


def _finish(side: object, inbound: bytes) -> bytes:
    try:
        return bytes(side.finish(inbound))  # type: ignore[attr-defined]
    except (SPAKEError, ValueError, AssertionError) as exc:
        raise ConfirmationFailed(f"the other side's PAKE message is not usable ({exc!r})")


class OwnerPake:
    """Side A. Its state is kept (serialised) while the owner waits for the contact."""

    def __init__(self, code: ShortCode, state: bytes | None = None,
                 entropy: Rng = os.urandom) -> None:
        self.code = code
        if state is None:
            self._side = SPAKE2_A(code.password(), idA=ID_OWNER, idB=ID_CONTACT,
                                  entropy_f=entropy)
            self.message = bytes(self._side.start())
        else:
            self._side = SPAKE2_A.from_serialized(state)
            self.message = b"A" + bytes(self._side.outbound_message)

    def state(self) -> bytes:
        return bytes(self._side.serialize())

    def finish(self, msg_b: bytes) -> SessionKeys:
        key = _finish(self._side, _check_message(msg_b, b"B"))
        return session_keys(key, self.code.nameplate, self.message, msg_b)


def contact_pake(code: ShortCode, msg_a: bytes,
                 entropy: Rng = os.urandom) -> tuple[bytes, SessionKeys]:
    """Side B in one step (the owner's message is already there): (msg_B, keys)."""
    side = SPAKE2_B(code.password(), idA=ID_OWNER, idB=ID_CONTACT, entropy_f=entropy)
    msg_b = bytes(side.start())
    key = _finish(side, _check_message(msg_a, b"A"))
    return msg_b, session_keys(key, code.nameplate, msg_a, msg_b)
