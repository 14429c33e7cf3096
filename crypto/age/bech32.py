"""Bech32 (BIP 173 checksum) as age uses it for keys: no 90-character limit, one case only.

age writes recipients in lowercase (`age1...`) and identities in uppercase
(`AGE-SECRET-KEY-1...`); the human-readable part keeps the case it was written in, so callers
can insist on the exact form they expect.
"""

from __future__ import annotations

from crypto.errors import MalformedError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VALUES = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                check ^= gen
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (acc << (to_bits - bits)) & max_value:
        # Leftover bits must be fewer than one input group and all zero: one encoding per key.
        raise MalformedError("bech32 data has invalid padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode `data` under the human-readable part `hrp`; the result has the case of `hrp`."""
    lower_hrp = hrp.lower()
    words = _convert_bits(data, 8, 5, pad=True)
    checksum_input = _hrp_expand(lower_hrp) + words + [0] * 6
    polymod = _polymod(checksum_input) ^ 1
    words += [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    text = lower_hrp + "1" + "".join(_CHARSET[w] for w in words)
    return text.upper() if hrp.isupper() else text


def decode(text: str) -> tuple[str, bytes]:
    """Return (hrp as written, data); MalformedError for anything but a valid one-case string."""
    if not text.isascii() or any(not 33 <= ord(c) <= 126 for c in text):
        raise MalformedError("bech32 string has characters outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise MalformedError("bech32 string mixes upper and lower case")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise MalformedError("bech32 string has no separator or a too short checksum")
    hrp = text[:pos]
    try:
        words = [_VALUES[c] for c in text[pos + 1 :].lower()]
    except KeyError:
        raise MalformedError("bech32 string has a character outside its alphabet")
    if _polymod(_hrp_expand(hrp.lower()) + words) != 1:
        raise MalformedError("bech32 checksum does not match")
    return hrp, bytes(_convert_bits(words[:-6], 5, 8, pad=False))
