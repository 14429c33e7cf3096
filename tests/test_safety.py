"""Safety numbers: symmetric, stable, and different for different keys.

`reference_safety_number` re-implements the algorithm from its written description in
docs/protocol.md (section 2), sharing no code with crypto/safety.py.
"""

from __future__ import annotations

import hashlib

import pytest

from crypto.errors import MalformedError
from crypto.safety import safety_digits, safety_number

# The raw Ed25519 public keys of the PeterNeumann and EnochRoot keys of the Go sumdb/note tests.
PETER = bytes.fromhex("1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6")
ENOCH = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
# The worked example printed in docs/protocol.md; a mobile implementation must reproduce it.
DOCUMENTED = "13418 50075 44811 77936 59954 26027 27954 31911 97129 45469 25443 14149"


def reference_half(key: bytes) -> str:
    state = bytes(2) + key  # version 0, two bytes
    for _round in range(5200):
        h = hashlib.new("sha512")
        h.update(state)
        h.update(key)
        state = h.digest()
    out = ""
    for group in range(6):
        value = 0
        for byte in state[5 * group : 5 * group + 5]:
            value = value * 256 + byte
        out += str(value % 100_000).rjust(5, "0")
    return out


def reference_safety_number(a: bytes, b: bytes) -> str:
    x, y = reference_half(a), reference_half(b)
    joined = x + y if x <= y else y + x
    return " ".join(joined[i : i + 5] for i in range(0, 60, 5))


def test_matches_independent_implementation_and_documented_vector() -> None:
    assert safety_number(PETER, ENOCH) == reference_safety_number(PETER, ENOCH) == DOCUMENTED


@pytest.mark.parametrize(
    "a, b",
    [
        (b"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgp", b"age1zvkyg2lqzgz8mxj9a4ns"),
        (PETER, PETER),
        (b"\x00", b"\xff" * 64),
    ],
)
def test_symmetric_and_equal_to_reference(a: bytes, b: bytes) -> None:
    number = safety_number(a, b)
    assert number == safety_number(b, a) == reference_safety_number(a, b)
    groups = number.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)


def test_different_keys_give_different_numbers() -> None:
    base = safety_number(PETER, ENOCH)
    flipped = bytes([PETER[0] ^ 1]) + PETER[1:]
    assert safety_number(flipped, ENOCH) != base
    assert safety_number(PETER, ENOCH + b"\x00") != base
    assert safety_digits(PETER) != safety_digits(ENOCH)
    # Each half belongs to one key: swapping one key changes exactly that half.
    assert safety_digits(ENOCH) in safety_number(flipped, ENOCH).replace(" ", "")


@pytest.mark.parametrize("bad", [b"", "age1text", None])
def test_refuses_non_bytes_or_empty(bad: object) -> None:
    with pytest.raises(MalformedError):
        safety_number(bad, PETER)  # type: ignore[arg-type]
