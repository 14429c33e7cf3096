"""Ed25519 keys and C2SP signed notes, checked against the Go reference implementation's vectors.

The PeterNeumann / EnochRoot keys, note and signatures below are published in
golang.org/x/mod/sumdb/note (note_test.go), the reference implementation of c2sp.org/signed-note.
Ed25519 is deterministic, so signing the same text with the same key must reproduce them exactly.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crypto.errors import BadSignature, CryptoError, MalformedError
from crypto.signing import (
    generate_signing_key,
    key_fingerprint,
    key_id,
    key_name,
    open_note,
    open_note_signers,
    public_key_bytes,
    sign_note,
    sign_raw,
    split_note,
    verifier_from_public_key,
    verifier_key,
    verify_raw,
)

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
    "WLox33WWd1RvMc+QQ=\n"
)


def counter_rng(start: int) -> Callable[[int], bytes]:
    """Deterministic 'randomness' so generated keys are reproducible in tests."""
    state = {"n": start}

    def rng(n: int) -> bytes:
        state["n"] += 1
        return hashlib.sha256(str(state["n"]).encode()).digest()[:n]

    return rng


@pytest.fixture
def device_key() -> str:
    return generate_signing_key("device-1", rng=counter_rng(1))


# ------------------------------------------------------------------ reference vectors


def test_key_id_is_truncated_sha256_of_name_newline_type_and_key() -> None:
    raw = base64.b64decode(PETER_VKEY.split("+", 2)[2])[1:]
    # Recompute from the spec's formula with nothing of ours, then with ours.
    expected = hashlib.sha256(b"PeterNeumann" + b"\n" + b"\x01" + raw).digest()[:4]
    assert expected.hex() == "c74f20a3"
    assert key_id("PeterNeumann", raw) == expected


def test_reference_signing_key_yields_reference_verifier_key() -> None:
    assert verifier_key(PETER_SKEY) == PETER_VKEY
    assert key_name(PETER_SKEY) == key_name(PETER_VKEY) == "PeterNeumann"


def test_signing_reproduces_the_reference_note_byte_for_byte() -> None:
    assert sign_note(TEXT, PETER_SKEY) == TEXT + "\n" + PETER_SIG


def test_reference_note_opens_with_each_known_key() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [PETER_VKEY]) == TEXT
    assert open_note(note, [ENOCH_VKEY]) == TEXT
    assert open_note_signers(note, [PETER_VKEY, ENOCH_VKEY]) == (TEXT, [PETER_VKEY, ENOCH_VKEY])


def test_note_with_no_known_signer_is_refused() -> None:
    with pytest.raises(BadSignature):
        open_note(TEXT + "\n" + ENOCH_SIG, [PETER_VKEY])
    with pytest.raises(BadSignature):
        open_note(TEXT + "\n" + PETER_SIG, [])


def test_bad_signature_from_known_key_rejects_whole_note() -> None:
    # The Go test's corruption: four base64 characters spliced into Peter's signature.
    bad_peter = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(BadSignature):
        open_note(TEXT + "\n" + bad_peter, [PETER_VKEY])
    # Even when another known key's signature is good.
    with pytest.raises(BadSignature):
        open_note(TEXT + "\n" + ENOCH_SIG + bad_peter, [PETER_VKEY, ENOCH_VKEY])


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        "\ud800" + TEXT + "\n" + PETER_SIG,  # not encodable as UTF-8
        TEXT + "\n" + "\u2014 Bad Name " + PETER_SIG.rsplit(" ", 1)[1],
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("\u2014", "--"),
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # unpadded base64
        TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_malformed_notes_are_refused(message: str) -> None:
    with pytest.raises(MalformedError):
        open_note(message, [PETER_VKEY])


def mangled(key: str) -> list[str]:
    """Every proper substring and every one-character increment of `key` (as the Go test does)."""
    out = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)}
    out |= {key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))}
    out.discard(key)
    return sorted(out)


def test_every_mangled_verifier_key_is_refused() -> None:
    for bad in mangled(PETER_VKEY):
        with pytest.raises(MalformedError):
            public_key_bytes(bad)


def test_every_mangled_signing_key_is_refused() -> None:
    for bad in mangled(PETER_SKEY):
        with pytest.raises(MalformedError):
            verifier_key(bad)


# ------------------------------------------------------------------ our own keys


def test_generated_key_round_trips_and_matches_pyca(device_key: str) -> None:
    vkey = verifier_key(device_key)
    seed = base64.b64decode(device_key.split("+", 4)[4])[1:]
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public_key_bytes(vkey) == raw
    assert verifier_from_public_key("device-1", raw) == vkey
    assert key_fingerprint(vkey) == hashlib.sha256(raw).hexdigest()
    assert key_name(vkey) == "device-1"


def test_injected_randomness_makes_keys_reproducible() -> None:
    a = generate_signing_key("n", rng=counter_rng(7))
    b = generate_signing_key("n", rng=counter_rng(7))
    c = generate_signing_key("n", rng=counter_rng(8))
    assert a == b != c


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "nl\n", "nbsp\u00a0x"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(MalformedError):
        generate_signing_key(name)


def test_raw_signature_round_trip_and_refusals(device_key: str) -> None:
    vkey = verifier_key(device_key)
    sig = sign_raw(b"safehold-login/v1\nexample\n", device_key)
    assert len(sig) == 64
    verify_raw(b"safehold-login/v1\nexample\n", sig, vkey)
    with pytest.raises(BadSignature):
        verify_raw(b"safehold-login/v1\nexamplf\n", sig, vkey)
    with pytest.raises(BadSignature):
        verify_raw(b"safehold-login/v1\nexample\n", sig[:-1], vkey)
    with pytest.raises(BadSignature):
        verify_raw(b"safehold-login/v1\nexample\n", sig, PETER_VKEY)


def test_note_round_trip(device_key: str) -> None:
    text = "line one\n\nline three after a blank line\n"
    note = sign_note(text, device_key)
    assert open_note(note, [verifier_key(device_key)]) == text
    assert split_note(note)[0] == text


def test_any_altered_character_of_a_note_is_refused(device_key: str) -> None:
    vkey = verifier_key(device_key)
    note = sign_note("safehold.chunk/v1\nseq 7\n", device_key)
    for i, ch in enumerate(note):
        replacement = "x" if ch != "x" else "y"
        altered = note[:i] + replacement + note[i + 1 :]
        with pytest.raises(CryptoError):
            open_note(altered, [vkey])


def test_note_signed_by_other_key_with_same_name_is_refused(device_key: str) -> None:
    impostor = generate_signing_key("device-1", rng=counter_rng(99))
    note = sign_note("hello\n", impostor)
    with pytest.raises(BadSignature):
        open_note(note, [verifier_key(device_key)])


def test_unknown_signature_is_ignored_beside_a_valid_known_one(device_key: str) -> None:
    other = generate_signing_key("device-1", rng=counter_rng(99))
    text = "hello\n"
    foreign_line = sign_note(text, other).split("\n\n", 1)[1]
    note = sign_note(text, device_key) + foreign_line
    assert open_note_signers(note, [verifier_key(device_key)]) == (text, [verifier_key(device_key)])


@pytest.mark.parametrize("text", ["", "no newline", "carriage\r\n", "nul\x00\n", "\udc80\n"])
def test_sign_note_refuses_text_that_cannot_be_a_note(device_key: str, text: str) -> None:
    with pytest.raises(MalformedError):
        sign_note(text, device_key)


def test_verifiers_must_be_a_list_not_one_key_string(device_key: str) -> None:
    note = sign_note("hello\n", device_key)
    with pytest.raises(MalformedError):
        open_note(note, verifier_key(device_key))
