"""Ed25519 keys in the C2SP signed-note key encoding, raw signatures, and signed notes.

Key strings (c2sp.org/signed-note; the encoding of golang.org/x/mod/sumdb/note):
    signing key:  PRIVATE+KEY+<name>+<key id, 8 lowercase hex>+<b64(0x01 || 32-byte seed)>
    verifier key: <name>+<key id, 8 lowercase hex>+<b64(0x01 || 32-byte public key)>
    key id = SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian.

A signed note is `text` (ending in "\n"), a blank line, then one or more lines
`— <name> <b64(key id || signature)>` (U+2014 EM DASH, space). The signature covers the text
including its final newline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crypto.errors import BadSignature, MalformedError

Rng = Callable[[int], bytes]

ED25519_TYPE = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # EM DASH, SPACE
PRIVATE_PREFIX = "PRIVATE+KEY+"
MAX_SIGNATURES = 100  # the same cap as Go's note.Open; the spec asks for at least 16
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
# One C-level scan instead of a Python loop per character (notes are checked per chunk). In a
# str pattern, \s is exactly str.isspace (both are Py_UNICODE_ISSPACE).
_BAD_KEY_NAME_CHAR = re.compile(r"[\s\x00-\x1f\x7f+]")
_NOTE_CONTROL_CHAR = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every C0 control but "\n"


@dataclass(frozen=True)
class _VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note, parsed but not yet verified."""

    name: str
    key_id: bytes
    signature: bytes


# ---------------------------------------------------------------- key strings


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty, without Unicode spaces, '+' or control characters."""
    return bool(name) and not _BAD_KEY_NAME_CHAR.search(name) and _encodes_as_utf8(name)


def _encodes_as_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def _b64decode_canonical(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise MalformedError(f"{what} is not valid base64")
    # Refuse alternative encodings of the same bytes (non-zero padding bits).
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedError(f"{what} is not canonical base64")
    return raw


def _split_key(body: str, what: str) -> tuple[str, bytes, bytes]:
    """Split '<name>+<hex8>+<b64(0x01 || 32 bytes)>' into name, key id, 32 key bytes."""
    name, kid, material = _split_key_any(body, what)
    if len(material) != 33 or material[:1] != ED25519_TYPE:
        raise MalformedError(f"{what} is not an Ed25519 (type 0x01) key")
    return name, kid, material[1:]


def _split_key_any(body: str, what: str) -> tuple[str, bytes, bytes]:
    """Split '<name>+<hex8>+<b64(type || key)>' into name, key id and the typed key material."""
    parts = body.split("+", 2)  # name and id hold no '+'; base64 may
    if len(parts) != 3:
        raise MalformedError(f"{what} must be <name>+<key id>+<key>")
    name, id_hex, material_b64 = parts
    if not is_valid_key_name(name):
        raise MalformedError(f"{what} has an invalid key name {name!r}")
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise MalformedError(f"{what} key id must be 8 lowercase hex digits")
    return name, bytes.fromhex(id_hex), _b64decode_canonical(material_b64, what)


def _parse_verifier(verifier: str) -> _VerifierKey:
    if not isinstance(verifier, str):
        raise MalformedError("verifier key must be a string")
    return _parse_verifier_text(verifier)


@lru_cache(maxsize=256)
def _parse_verifier_text(verifier: str) -> _VerifierKey:
    # Cached: the same few keys check every note of a bundle. Only a valid parse is cached
    # (lru_cache does not keep exceptions), and the result is immutable.
    name, kid, public_key = _split_key(verifier, "verifier key")
    if not hmac.compare_digest(kid, key_id(name, public_key)):
        raise MalformedError("verifier key id does not match its name and public key")
    _public_key_object(public_key)
    return _VerifierKey(name, kid, public_key)


def _parse_signing_key(signing_key: str) -> tuple[str, bytes, Ed25519PrivateKey]:
    if not isinstance(signing_key, str) or not signing_key.startswith(PRIVATE_PREFIX):
        raise MalformedError("signing key must start with PRIVATE+KEY+")
    return _parse_signing_key_text(signing_key)


@lru_cache(maxsize=8)
def _parse_signing_key_text(signing_key: str) -> tuple[str, bytes, Ed25519PrivateKey]:
    # Cached: a server signs every checkpoint with one key, and loading it (deriving the public
    # key to check the key id) costs more than the signature. Only valid parses are cached.
    name, kid, seed = _split_key(signing_key[len(PRIVATE_PREFIX) :], "signing key")
    private = Ed25519PrivateKey.from_private_bytes(seed)
    if not hmac.compare_digest(kid, key_id(name, _raw_public(private))):
        raise MalformedError("signing key id does not match its name and key")
    return name, kid, private


def _public_key_object(public_key: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise MalformedError("not a valid Ed25519 public key")


@lru_cache(maxsize=256)
def _verifying_key(public_key: bytes) -> Ed25519PublicKey:
    # Cached: loading a key costs about a tenth of a verification, and the same few keys
    # verify every note of a bundle; key objects are immutable.
    return _public_key_object(public_key)


def _raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _encode_key(name: str, key_bytes: bytes, public_key: bytes) -> str:
    material = base64.b64encode(ED25519_TYPE + key_bytes).decode("ascii")
    return f"{name}+{key_id(name, public_key).hex()}+{material}"


def signing_key_from_seed(name: str, seed: bytes) -> str:
    """The signing-key string for a 32-byte Ed25519 seed."""
    if not is_valid_key_name(name):
        raise MalformedError(f"invalid key name {name!r}: no spaces, '+' or control characters")
    if len(seed) != 32:
        raise MalformedError("an Ed25519 seed is 32 bytes")
    public_key = _raw_public(Ed25519PrivateKey.from_private_bytes(seed))
    return PRIVATE_PREFIX + _encode_key(name, seed, public_key)


def generate_signing_key(name: str, rng: Rng = os.urandom) -> str:
    """A new Ed25519 signing key named `name` (e.g. a host[:port] or a device id)."""
    return signing_key_from_seed(name, rng(32))


def verifier_key(signing_key: str) -> str:
    """The public verifier-key string of a signing key."""
    name, _, private = _parse_signing_key(signing_key)
    public_key = _raw_public(private)
    return _encode_key(name, public_key, public_key)


def verifier_from_public_key(name: str, public_key: bytes) -> str:
    """The verifier-key string for a raw 32-byte Ed25519 public key."""
    if not is_valid_key_name(name):
        raise MalformedError(f"invalid key name {name!r}")
    if len(public_key) != 32:
        raise MalformedError("an Ed25519 public key is 32 bytes")
    _public_key_object(public_key)
    return _encode_key(name, public_key, public_key)


def key_name(key: str) -> str:
    """The name inside a signing key or a verifier key (validated)."""
    if isinstance(key, str) and key.startswith(PRIVATE_PREFIX):
        return _parse_signing_key(key)[0]
    return _parse_verifier(key).name


def public_key_bytes(verifier: str) -> bytes:
    """The raw 32-byte Ed25519 public key inside a verifier key."""
    return _parse_verifier(verifier).public_key


def key_fingerprint(verifier: str) -> str:
    """Lowercase hex SHA-256 of the raw public key: what people compare out of band."""
    return hashlib.sha256(public_key_bytes(verifier)).hexdigest()


# ---------------------------------------------------------------- raw signatures


def sign_raw(message: bytes, signing_key: str) -> bytes:
    """A 64-byte Ed25519 signature (RFC 8032) over `message`."""
    return _parse_signing_key(signing_key)[2].sign(message)


def verify_raw(message: bytes, signature: bytes, verifier: str) -> None:
    """Raise BadSignature unless `signature` is the verifier's Ed25519 signature of `message`."""
    key = _parse_verifier(verifier)
    _verify_ed25519(key.public_key, message, signature)


def _verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> None:
    if not isinstance(message, bytes) or not isinstance(signature, bytes):
        raise MalformedError("message and signature must be bytes")
    if len(signature) != 64:
        raise BadSignature("an Ed25519 signature is 64 bytes")
    try:
        _verifying_key(public_key).verify(signature, message)
    except InvalidSignature:
        raise BadSignature("signature does not verify")


# ---------------------------------------------------------------- signed notes


def _check_note_chars(text: str, what: str) -> None:
    if not _encodes_as_utf8(text):
        raise MalformedError(f"{what} is not valid UTF-8")
    if _NOTE_CONTROL_CHAR.search(text):
        raise MalformedError(f"{what} contains a control character")


def _check_note_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedError("note text must be non-empty and end in a newline")
    _check_note_chars(text, "note text")


def _signature_line(name: str, kid: bytes, signature: bytes) -> str:
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(kid + signature).decode('ascii')}\n"


def sign_note(text: str, signing_key: str) -> str:
    """Sign `text` (which must end in "\\n") as a C2SP signed note with one signature."""
    _check_note_text(text)
    name, kid, private = _parse_signing_key(signing_key)
    signature = private.sign(text.encode("utf-8"))
    return text + "\n" + _signature_line(name, kid, signature)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedError("note signature lines must start with an em dash and a space")
    name, sep, sig_b64 = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
    if not sep or not is_valid_key_name(name):
        raise MalformedError("note signature line has an invalid key name")
    blob = _b64decode_canonical(sig_b64, "note signature")
    if len(blob) < 5:
        raise MalformedError("note signature is too short")
    return NoteSignature(name, blob[:4], blob[4:])


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and parsed (unverified) signatures; MalformedError."""
    if not isinstance(note, str):
        raise MalformedError("a signed note is text")
    _check_note_chars(note, "signed note")
    split = note.rfind("\n\n")  # the text may hold blank lines; the last one separates
    if split < 0:
        raise MalformedError("not a signed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedError("a signed note ends with a signature line and a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
    return text, [_parse_signature_line(line) for line in lines]


def _verifier_table(verifiers: Sequence[str]) -> dict[tuple[str, bytes], tuple[str, _VerifierKey]]:
    if isinstance(verifiers, str):
        raise MalformedError("verifiers must be a sequence of verifier keys, not one string")
    table: dict[tuple[str, bytes], tuple[str, _VerifierKey]] = {}
    for verifier in verifiers:
        parsed = _parse_verifier(verifier)
        slot = (parsed.name, parsed.key_id)
        if slot in table and table[slot][1] != parsed:
            label = f"{parsed.name}+{parsed.key_id.hex()}"
            raise MalformedError(f"two different verifier keys share {label}")
        table[slot] = (verifier, parsed)
    return table


def open_note_signers(note: str, verifiers: Sequence[str]) -> tuple[str, list[str]]:
    """Verify a note; return its text and the verifier keys (from `verifiers`) that signed it.

    Signatures by keys not in `verifiers` (name and id not both matching) are ignored. Every
    signature by a known key must verify (else BadSignature), and at least one must be present
    (else BadSignature). Malformed notes or keys raise MalformedError.
    """
    table = _verifier_table(verifiers)
    text, signatures = split_note(note)
    message = text.encode("utf-8")
    signers: list[str] = []
    for sig in signatures:
        known = table.get((sig.name, sig.key_id))
        if known is None:
            continue
        verifier, parsed = known
        try:
            _verify_ed25519(parsed.public_key, message, sig.signature)
        except BadSignature:
            raise BadSignature(f"invalid signature by {sig.name}+{sig.key_id.hex()}")
        if verifier not in signers:
            signers.append(verifier)
    if not signers:
        raise BadSignature("the note carries no signature by a trusted key")
    return text, signers


def open_note(note: str, verifiers: Sequence[str]) -> str:
    """The note's text if at least one of `verifiers` signed it validly (see open_note_signers)."""
    return open_note_signers(note, verifiers)[0]
