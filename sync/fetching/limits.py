"""Bounds a fetch keeps whatever the server says (docs/threat-model.md, hostile server).

The server advertises its own limits at /v1/server; a fetch takes them only up to its own hard
caps, so an honest server is used as it is configured and a hostile one cannot make the client
download, allocate or loop without end. Everything beyond a bound is refused with OverLimit
(exit 1) before it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sync.bundle.limits import MAX_CHUNK_FILE

MIB = 1024 * 1024
# No chunk limit a server advertises is believed beyond the largest chunk file a bundle may hold
# (verify would refuse the bundle anyway).
HARD_MAX_CHUNK_BYTES = MAX_CHUNK_FILE
DEFAULT_MAX_CHUNK_BYTES = 4 * MIB  # a server that advertises none: the server's default
MAX_LOG_SIZE = 1 << 20  # leaves of one encounter's log (a 2-hour recording makes ~20 000)
MAX_LEAF_BYTES = 16 * 1024  # a descriptor or access note is ~400 bytes
MAX_LOG_BYTES = 256 * MIB  # all leaves of one log together, as held in memory
MAX_PROOF_HASHES = 64  # an RFC 9162 proof of a tree below 2^63 leaves has at most 2 x 63
MAX_NOTE_CHARS = 64 * 1024  # a signed checkpoint (with cosignatures) or descriptor note


@dataclass(frozen=True)
class Limits:
    max_chunk_bytes: int
    leaves_per_page: int
    receipts_per_page: int
    pack_chunks: int
    pack_bytes: int


def _advertised(limits: Any, name: str, default: int, cap: int) -> int:
    value = limits.get(name) if isinstance(limits, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return default
    return min(value, cap)


def limits_of(server_info: dict[str, Any]) -> Limits:
    """The server's advertised limits, each held to the client's own cap."""
    advertised = server_info.get("limits")
    return Limits(
        max_chunk_bytes=_advertised(advertised, "max_chunk_bytes", DEFAULT_MAX_CHUNK_BYTES,
                                    HARD_MAX_CHUNK_BYTES),
        leaves_per_page=_advertised(advertised, "max_leaves_per_page", 1000, 1000),
        receipts_per_page=_advertised(advertised, "max_receipts_per_page", 500, 500),
        pack_chunks=_advertised(advertised, "max_pack_chunks", 256, 256),
        pack_bytes=_advertised(advertised, "max_pack_bytes", 16 * MIB, 64 * MIB),
    )
