"""Safety numbers: 60 digits two people compare out of band to know they hold each other's keys.

Signal-style (Signal's NumericFingerprintGenerator without the stable identifier): each side's
key material becomes 30 digits; the two halves are sorted so both people see the same number.

    h = 0x00 0x00 || key                       (version 0 as two big-endian bytes)
    repeat 5200 times: h = SHA-512(h || key)
    digits = for each of h[0:5], h[5:10], ..., h[25:30]:
             big-endian unsigned integer mod 100000, zero-padded to 5 decimal digits
    number = the two 30-digit strings, smaller first, joined; shown as 12 groups of 5
"""

from __future__ import annotations

import hashlib

from crypto.errors import MalformedError

VERSION = b"\x00\x00"
ITERATIONS = 5200  # Signal's count: makes a targeted second-preimage search ~5200x costlier
GROUPS_PER_SIDE = 6
GROUP_BYTES = 5


def safety_digits(key: bytes) -> str:
    """One side's 30 digits for `key` (the key material's exact bytes)."""
    if not isinstance(key, bytes) or not key:
        raise MalformedError("safety numbers are computed from non-empty key bytes")
    digest = VERSION + key
    for _ in range(ITERATIONS):
        digest = hashlib.sha512(digest + key).digest()
    groups = []
    for i in range(GROUPS_PER_SIDE):
        chunk = digest[i * GROUP_BYTES : (i + 1) * GROUP_BYTES]
        groups.append(f"{int.from_bytes(chunk, 'big') % 100000:05d}")
    return "".join(groups)


def safety_number(a: bytes, b: bytes) -> str:
    """The 60-digit safety number of two keys, in 12 space-separated groups of 5.

    Order-independent: safety_number(a, b) == safety_number(b, a).
    """
    first, second = sorted((safety_digits(a), safety_digits(b)))
    digits = first + second
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))
