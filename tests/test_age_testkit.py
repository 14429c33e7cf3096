"""Every C2SP age test vector (tests/testkit, format in its README.md) against crypto.age.

Each vector is decrypted twice: all at once with `decrypt`, which must return the payload or
raise the expected failure class and nothing else; and streamed into a `Decryptor` in
misaligned pieces, where everything `update`/`finalize` released must hash to the vector's
`payload` (for payload failures: exactly the chunks that authenticated before the error).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crypto import age
from crypto.age.armor import ArmorDecoder
from crypto.age.format import encode_header_without_mac, mac_line_suffix, parse_header
from crypto.age.stream import NONCE_BYTES, payload_key, seal_payload
from crypto.errors import (
    ArmorError,
    CryptoError,
    HeaderMacError,
    MalformedError,
    NoIdentityMatched,
    PayloadError,
)

TESTKIT = Path(__file__).parent / "testkit"
NOT_VECTORS = {"LICENSE", "README.md", "SOURCE"}
PQ_IDENTITY_PREFIX = "AGE-SECRET-KEY-PQ-"
PQ_SKIP_REASON = (
    "post-quantum hybrid (mlkem768x25519, age1pq) recipients are not implemented: Safehold "
    "chunks use X25519 only, as DESIGN.md specifies"
)


@dataclass
class Vector:
    name: str
    expect: str
    payload_sha256: str | None
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False
    file_key: bytes | None = None
    data: bytes = b""


def load_vector(path: Path) -> Vector:
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    assert sep, f"{path.name}: no blank line after the vector header"
    fields: dict[str, list[str]] = {}
    for line in head.decode().split("\n"):
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    known = {"expect", "payload", "identity", "passphrase", "armored", "file key",
             "comment", "compressed"}
    assert set(fields) <= known, f"{path.name}: unknown keys {set(fields) - known}"
    if fields.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return Vector(
        name=path.name,
        expect=fields["expect"][0],
        payload_sha256=fields.get("payload", [None])[0],
        identities=fields.get("identity", []),
        passphrases=fields.get("passphrase", []),
        armored=fields.get("armored") == ["yes"],
        file_key=bytes.fromhex(fields["file key"][0]) if "file key" in fields else None,
        data=body,
    )


VECTOR_PATHS = sorted(p for p in TESTKIT.iterdir() if p.name not in NOT_VECTORS)


def vector_params() -> list[object]:
    params: list[object] = []
    for path in VECTOR_PATHS:
        vector = load_vector(path)
        marks = []
        if any(i.startswith(PQ_IDENTITY_PREFIX) for i in vector.identities):
            marks.append(pytest.mark.skip(reason=PQ_SKIP_REASON))
        params.append(pytest.param(vector, id=vector.name, marks=marks))
    return params


PARAMS = vector_params()


def identities_of(vector: Vector) -> list[age.Identity]:
    return [*vector.identities, *(age.Passphrase(p) for p in vector.passphrases)]


def assert_failure_class(exc: BaseException, expect: str) -> None:
    """The failure classes of the testkit README, mapped onto crypto.errors."""
    assert isinstance(exc, CryptoError), repr(exc)
    if expect == "header failure":
        assert isinstance(exc, MalformedError) and not isinstance(exc, ArmorError), repr(exc)
    elif expect == "armor failure":
        assert isinstance(exc, ArmorError), repr(exc)
    elif expect == "no match":
        assert isinstance(exc, NoIdentityMatched), repr(exc)
    elif expect == "HMAC failure":
        assert isinstance(exc, HeaderMacError), repr(exc)
    elif expect == "payload failure":
        assert isinstance(exc, PayloadError), repr(exc)
    else:
        pytest.fail(f"unknown expectation {expect!r}")


def stream_decrypt(vector: Vector, piece: int) -> tuple[bytes, CryptoError | None]:
    """Feed the file in pieces; return (everything released, the error raised if any)."""
    decryptor = age.Decryptor(identities_of(vector))
    released = []
    try:
        for start in range(0, len(vector.data), piece):
            released.append(decryptor.update(vector.data[start : start + piece]))
        released.append(decryptor.finalize())
    except CryptoError as exc:
        return b"".join(released), exc
    return b"".join(released), None


def test_the_testkit_is_all_there() -> None:
    """Guard against a runner that passes because it found no vectors."""
    assert len(VECTOR_PATHS) == 143
    skipped = [p for p in PARAMS if getattr(p, "marks", ())]
    assert len(skipped) == 19  # the hybrid ones, and no others


@pytest.mark.parametrize("vector", PARAMS)
def test_decrypt_all_at_once(vector: Vector) -> None:
    if vector.expect == "success":
        plaintext = age.decrypt(vector.data, identities_of(vector))
        assert hashlib.sha256(plaintext).hexdigest() == vector.payload_sha256
    else:
        with pytest.raises(CryptoError) as caught:
            age.decrypt(vector.data, identities_of(vector))
        assert_failure_class(caught.value, vector.expect)


@pytest.mark.parametrize("piece", [4099, 65552])
@pytest.mark.parametrize("vector", PARAMS)
def test_streamed_release_matches_payload_hash(vector: Vector, piece: int) -> None:
    released, error = stream_decrypt(vector, piece)
    if vector.expect == "success":
        assert error is None
    else:
        assert error is not None
        assert_failure_class(error, vector.expect)
    if vector.payload_sha256 is not None:
        assert hashlib.sha256(released).hexdigest() == vector.payload_sha256
    else:
        assert released == b""


SMALL = [p for p in PARAMS if len(p.values[0].data) < 4096]  # type: ignore[attr-defined]


@pytest.mark.parametrize("vector", SMALL)
def test_byte_at_a_time_gives_the_same_result(vector: Vector) -> None:
    whole, whole_error = stream_decrypt(vector, len(vector.data) or 1)
    bytewise, bytewise_error = stream_decrypt(vector, 1)
    assert bytewise == whole
    assert type(bytewise_error) is type(whole_error)


def binary_data(vector: Vector) -> bytes:
    if not vector.armored:
        return vector.data
    decoder = ArmorDecoder()
    return decoder.update(vector.data) + decoder.finalize()


REENCODABLE = [
    p for p in PARAMS
    if p.values[0].expect in {"success", "no match", "HMAC failure", "payload failure"}  # type: ignore[attr-defined]
]


@pytest.mark.parametrize("vector", REENCODABLE)
def test_header_reencodes_to_the_same_bytes(vector: Vector) -> None:
    header = parse_header(binary_data(vector))
    stanzas = list(header.stanzas)
    assert encode_header_without_mac(stanzas) == header.mac_input
    assert header.mac_input + mac_line_suffix(header.mac) == header.header_bytes


SUCCESSES = [p for p in PARAMS if p.values[0].expect == "success"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("vector", SUCCESSES)
def test_sealing_the_payload_again_gives_the_same_ciphertext(vector: Vector) -> None:
    """The encryption direction, pinned by the vectors' file keys and nonces."""
    data = binary_data(vector)
    header = parse_header(data)
    nonce = data[header.payload_offset : header.payload_offset + NONCE_BYTES]
    plaintext = age.decrypt(vector.data, identities_of(vector))
    assert vector.file_key is not None
    sealed = seal_payload(payload_key(vector.file_key, nonce), plaintext)
    assert b"".join(sealed) == data[header.payload_offset + NONCE_BYTES :]
