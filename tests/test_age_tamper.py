"""Altered, cut, mixed-up and misaddressed age files: a CryptoError, never plaintext.

Also the streaming promise: a Decryptor hands out a chunk's plaintext only after its tag has
verified, so a corrupted later chunk costs exactly the chunks from it onwards.
"""

from __future__ import annotations

import random

import pytest

from crypto import age
from crypto.age.stream import CHUNK, SEALED_CHUNK
from crypto.errors import (
    AuthenticationError,
    CryptoError,
    HeaderMacError,
    MalformedError,
    NoIdentityMatched,
    PayloadError,
)

ALICE = age.generate_identity()
BOB = age.generate_identity()
EVE = age.generate_identity()
SLOT = age.Slot("0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23", "video", 7, False)
SMALL_MESSAGE = b"Officer badge 4471 approached the car at 03:30."


def small_file() -> bytes:
    return age.encrypt(SMALL_MESSAGE, [age.recipient_of(ALICE), age.recipient_of(BOB)],
                       slot=SLOT)


def multi_chunk(chunks: float, seed: int = 1) -> tuple[bytes, bytes]:
    message = random.Random(seed).randbytes(int(chunks * CHUNK))
    return message, age.encrypt(message, [age.recipient_of(ALICE)], slot=SLOT)


def refuses(data: bytes) -> CryptoError:
    with pytest.raises(CryptoError) as caught:
        age.decrypt(data, [ALICE])
    return caught.value


def test_every_single_bit_flip_of_a_small_file_is_refused() -> None:
    data = small_file()
    assert age.decrypt(data, [ALICE]) == SMALL_MESSAGE
    for bit in range(len(data) * 8):
        altered = bytearray(data)
        altered[bit // 8] ^= 1 << (bit % 8)
        refuses(bytes(altered))


def test_bit_flips_around_chunk_boundaries_are_refused() -> None:
    _, data = multi_chunk(2.5)
    payload_start = age.read_header(data).payload_offset
    boundaries = [payload_start, payload_start + 16, payload_start + 16 + SEALED_CHUNK]
    positions = {p + d for p in boundaries for d in range(-20, 20)} | {len(data) - 1}
    positions |= set(random.Random(2).sample(range(len(data)), 200))
    for pos in sorted(positions):
        altered = bytearray(data)
        altered[pos] ^= 0x01
        refuses(bytes(altered))


def test_every_truncation_of_a_small_file_is_refused() -> None:
    data = small_file()
    for cut in range(len(data)):
        refuses(data[:cut])


def test_truncation_at_a_chunk_boundary_is_a_payload_error() -> None:
    _, data = multi_chunk(3)  # three full chunks, the last one final
    start = age.read_header(data).payload_offset + 16
    for kept_chunks in (0, 1, 2):
        error = refuses(data[: start + kept_chunks * SEALED_CHUNK])
        assert isinstance(error, PayloadError)


def test_appended_and_dropped_chunks_are_refused() -> None:
    _, data = multi_chunk(2.5)
    start = age.read_header(data).payload_offset + 16
    assert isinstance(refuses(data + b"\x00"), PayloadError)
    assert isinstance(refuses(data + data[start:]), PayloadError)
    dropped_middle = data[: start + SEALED_CHUNK] + data[start + 2 * SEALED_CHUNK :]
    assert isinstance(refuses(dropped_middle), PayloadError)
    swapped = (data[:start] + data[start + SEALED_CHUNK : start + 2 * SEALED_CHUNK]
               + data[start : start + SEALED_CHUNK] + data[start + 2 * SEALED_CHUNK :])
    assert isinstance(refuses(swapped), PayloadError)


def test_a_header_swapped_between_two_files_is_refused() -> None:
    first, second = small_file(), small_file()
    first_end = age.read_header(first).payload_offset
    second_end = age.read_header(second).payload_offset
    assert isinstance(refuses(first[:first_end] + second[second_end:]), PayloadError)
    # Another file's stanzas under this file's MAC line ("--- " + 43 + "\n" = 48 bytes).
    mixed = second[: second_end - 48] + first[first_end - 48 :]
    assert isinstance(refuses(mixed), HeaderMacError)


def test_a_wrong_key_is_no_match() -> None:
    data = small_file()
    with pytest.raises(NoIdentityMatched):
        age.decrypt(data, [EVE])
    with pytest.raises(NoIdentityMatched):
        age.decrypt(data, [age.Passphrase("guess")])
    with pytest.raises(NoIdentityMatched):
        age.decrypt(age.encrypt_with_passphrase(b"x", "right", work_factor=2), [EVE])
    with pytest.raises(NoIdentityMatched):
        age.decrypt(age.encrypt_with_passphrase(b"x", "right", work_factor=2),
                    [age.Passphrase("wrong")])


def test_an_edited_slot_breaks_the_header_mac() -> None:
    data = small_file()
    edited = data.replace(b" video 7 more\n", b" video 8 more\n", 1)
    assert age.read_slot(edited) == age.Slot(SLOT.encounter, "video", 8, False)  # unauthenticated
    with pytest.raises(HeaderMacError):
        age.decrypt(edited, [ALICE])
    assert age.decrypt_chunk(data, [ALICE]) == (SMALL_MESSAGE, SLOT)


def with_slot_line(line: bytes, body: bytes = b"\n") -> bytes:
    data = small_file()
    original = b"-> safehold-slot " + b" ".join(w.encode() for w in SLOT.wire_args()) + b"\n\n"
    assert original in data
    return data.replace(original, line + b"\n" + body, 1)


@pytest.mark.parametrize("line, body", [
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 7", b"\n"),
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 7 more x", b"\n"),
    (b"-> safehold-slot 0D9F6A52-8C1B-4F3E-A7D2-5B6E9C0F1A23 video 7 more", b"\n"),
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 Video 7 more", b"\n"),
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 07 more", b"\n"),
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 4294967296 more", b"\n"),
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 7 last", b"\n"),
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 7 more", b"AAAA\n"),
    (b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 7 more\n"
     b"-> safehold-slot 0d9f6a52-8c1b-4f3e-a7d2-5b6e9c0f1a23 video 8 more", b"\n"),
])
def test_malformed_or_doubled_slots_are_malformed(line: bytes, body: bytes) -> None:
    data = with_slot_line(line, body)
    with pytest.raises(MalformedError):
        age.read_slot(data)
    with pytest.raises(MalformedError):
        age.decrypt(data, [ALICE])


def test_files_without_x25519_or_with_junk_are_recognised() -> None:
    with pytest.raises(MalformedError):
        age.read_header(b"just some plaintext audio bytes")
    with pytest.raises(MalformedError):
        age.read_header(b"")
    header = age.read_header(age.encrypt_with_passphrase(b"x", "pw", work_factor=2))
    assert age.x25519_stanza_count(header) == 0
    assert age.x25519_stanza_count(age.read_header(small_file())) == 2


def test_scrypt_work_factor_above_the_limit_is_refused_before_any_work() -> None:
    data = age.encrypt_with_passphrase(b"x", "pw", work_factor=12)
    with pytest.raises(MalformedError, match="exceeds the limit"):
        age.decrypt(data, [age.Passphrase("pw", max_work_factor=11)])
    assert age.decrypt(data, [age.Passphrase("pw", max_work_factor=12)]) == b"x"


@pytest.mark.parametrize("piece", [1000, 65536, SEALED_CHUNK, 1 << 20])
def test_stream_releases_only_authenticated_chunks(piece: int) -> None:
    message, data = multi_chunk(4.5)
    start = age.read_header(data).payload_offset + 16
    corrupted = bytearray(data)
    corrupted[start + 3 * SEALED_CHUNK + 100] ^= 0x80  # inside the fourth chunk
    decryptor = age.Decryptor([ALICE])
    released = []
    with pytest.raises(PayloadError):
        for i in range(0, len(corrupted), piece):
            released.append(decryptor.update(bytes(corrupted[i : i + piece])))
        decryptor.finalize()
    assert b"".join(released) == message[: 3 * CHUNK]  # chunks 1-3, nothing of 4 or 5
    with pytest.raises(PayloadError):  # errors are sticky
        decryptor.finalize()


def test_stream_holds_the_last_chunk_until_the_end() -> None:
    message, data = multi_chunk(2.5)
    decryptor = age.Decryptor([ALICE])
    early = decryptor.update(data[:-1])
    assert early == message[: 2 * CHUNK]  # the short last chunk is not released yet
    assert decryptor.slot == SLOT
    assert early + decryptor.update(data[-1:]) + decryptor.finalize() == message
    truncated = age.Decryptor([ALICE])
    assert truncated.update(data[:-1]) == message[: 2 * CHUNK]
    with pytest.raises(AuthenticationError):
        truncated.finalize()


def test_stream_with_wrong_key_releases_nothing() -> None:
    _, data = multi_chunk(1.5)
    decryptor = age.Decryptor([EVE])
    with pytest.raises(NoIdentityMatched):
        decryptor.update(data)
