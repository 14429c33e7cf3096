"""Verify a re-wrapped chunk of a one-encounter share (bundle file `.grant.json`).

Her bundle's `.age` file is `new header || payload`; the descriptor and receipt sign the
original `old header || payload`. The `.grant.json` beside it holds the owner device's signed
grant (crypto/grant.py) and the original header. Verify checks that the grant is signed by a
device of the owner's roster and names this chunk, that the new header is the one it signed
(SHA-256) and holds this chunk's slot stanza and one X25519 stanza, and that the original
header ends where the grant says; it then hashes original header + this file's payload and
compares that with the descriptor's SHA-256 (chunks.py): the payload is the same bytes, under
a re-wrapped header. The new header's MAC is checked when it is decrypted (it needs her key).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crypto.age.format import find_header_end
from crypto.descriptor import ChunkDescriptor
from crypto.errors import BadSignature, CryptoError
from crypto.grant import Grant, check_grant_header, open_grant
from sync.bundle.files import GRANT_SUFFIX

if TYPE_CHECKING:
    from sync.verifying.chunks import _ChunkCheck

__all__ = ["GRANT_SUFFIX", "ShareFile", "open_share"]


@dataclass
class ShareFile:
    grant: Grant | None
    original_header: bytes

    def rewrapped(self, check: _ChunkCheck, head: bytes) -> int:
        """Where the payload starts in the re-wrapped file (after checking its header)."""
        cut = find_header_end(head)
        name = check.entry.age
        where = f"chunk {check.entry.stream} seq {check.entry.seq}"
        if cut < 0:
            check.error("grant_header", name, f"{where}: has no complete age header")
            return 0
        if self.grant is not None:
            try:
                check_grant_header(self.grant, head[:cut])
            except CryptoError as exc:
                check.error("grant_header", name, f"{where}: its re-wrapped header does not "
                            f"match the owner's grant ({exc})")
        return cut


def open_share(check: _ChunkCheck, desc: ChunkDescriptor | None) -> ShareFile:
    """The grant file of a chunk, checked; problems are recorded on `check`."""
    entry = check.entry
    name = entry.files[GRANT_SUFFIX]
    where = f"chunk {entry.stream} seq {entry.seq}"
    try:
        data = json.loads(check.read_small(name).decode("utf-8"))
        note, original = str(data["grant"]), base64.b64decode(data["original_header"],
                                                              validate=True)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, binascii.Error) as exc:
        check.error("grant_malformed", name, f"{where}: is not a valid grant file ({exc})")
        return ShareFile(None, b"")
    try:
        grant, _signers = open_grant(note, list(check.ctx.trust.devices.values()))
    except BadSignature as exc:
        check.error("grant_signature", name, f"{where}: the grant is not signed by a device of "
                    f"the owner's roster (forged): {exc}")
        return ShareFile(None, original)
    except CryptoError as exc:
        check.error("grant_malformed", name, f"{where}: the grant is not a valid statement "
                    f"({exc})")
        return ShareFile(None, original)
    if (grant.encounter, grant.stream, grant.seq) != \
            (check.ctx.trust.encounter, entry.stream, entry.seq):
        check.error("grant_misplaced", name, f"{where}: the grant is for {grant.stream} seq "
                    f"{grant.seq} of {grant.encounter}")
    elif desc is not None and grant.chunk_sha256 != desc.sha256:
        check.error("grant_misplaced", name, f"{where}: the grant names another chunk (SHA-256 "
                    "differs from the descriptor's)")
    if find_header_end(original) != len(original) or grant.payload_offset != len(original):
        check.error("grant_header", name, f"{where}: the original header does not end where "
                    "the grant says the payload starts")
    return ShareFile(grant, original)
