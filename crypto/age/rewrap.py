"""Re-wrap an age file's key to a new reader without touching its payload.

An age payload is sealed under a key derived from the file key and the payload nonce; the
header only wraps that file key to each reader and authenticates the list with a MAC keyed by
the file key. Whoever holds one of the readers' identities can therefore unwrap the file key,
verify the old MAC, and write a new header for other readers; the payload bytes that follow
stay exactly as they were (docs/protocol.md, "Sharing one encounter").
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence

from crypto.age.format import (
    SLOT_TYPE,
    X25519_TYPE,
    Header,
    Stanza,
    encode_header_without_mac,
    mac_line_suffix,
    parse_header,
)
from crypto.age.keys import Rng, hkdf_sha256, load_identity, unwrap_x25519, wrap_x25519
from crypto.errors import HeaderMacError, MalformedError, NoIdentityMatched


def header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return hmac.digest(hkdf_sha256(file_key, b"", b"header"), mac_input, "sha256")


def unwrap_file_key(header: Header, identities: Sequence[str]) -> bytes:
    """The file key, after the header MAC verified under it; NoIdentityMatched/HeaderMacError."""
    for identity in identities:
        load_identity(identity)
        for stanza in header.stanzas:
            if stanza.type != X25519_TYPE:
                continue
            file_key = unwrap_x25519(stanza, identity)
            if file_key is None:
                continue
            if not hmac.compare_digest(header_mac(file_key, header.mac_input), header.mac):
                raise HeaderMacError("the header MAC does not verify: the header was altered")
            return file_key
    raise NoIdentityMatched("none of the given identities can open this file")


def rewrap_header(data: bytes, identities: Sequence[str], recipients: Sequence[str],
                  rng: Rng = os.urandom) -> bytes:
    """A new header (ending after its MAC line) for the age file starting `data`: the slot
    stanza kept, one X25519 stanza per recipient, the MAC recomputed under the same file key.

    Append the original payload (data[len(old header):]) to get a complete age file that the
    recipients open. The original readers' stanzas are not carried over."""
    if isinstance(recipients, str) or not recipients:
        raise MalformedError("rewrap_header needs a non-empty sequence of recipients")
    header = parse_header(data)
    file_key = unwrap_file_key(header, identities)
    stanzas: list[Stanza] = [s for s in header.stanzas if s.type == SLOT_TYPE]
    stanzas += [wrap_x25519(file_key, recipient, rng) for recipient in recipients]
    head = encode_header_without_mac(stanzas)
    return head + mac_line_suffix(header_mac(file_key, head))
