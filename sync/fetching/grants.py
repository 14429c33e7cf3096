"""A share recipient's fetch: put the re-wrapped headers in front of the downloaded payloads.

The server serves her the chunks as stored (sealed to the owner's readers, not to her) and, at
GET /v1/encounters/{id}/grants, one re-wrapped header per chunk with the owner device's signed
grant. For each, after checking the grant (signed by a device of the roster, for this chunk,
header digest as signed, payload offset where the stored chunk's payload starts), the bundle's
`.age` file becomes `new header || original payload` — a complete age file her key opens with
any age tool — and `.grant.json` keeps the grant and the original header, from which verify
rebuilds the original bytes the descriptor and receipt sign.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crypto.age.format import find_header_end
from crypto.errors import CryptoError
from crypto.grant import check_grant_header, open_grant
from sync.bundle.files import AGE_SUFFIX, GRANT_SUFFIX, BundleWriter, chunk_path
from sync.errors import UntrustedServer
from sync.fetching.download import complete
from sync.fetching.plan import Plan, PlannedChunk, Reader

HEAD_BYTES = 64 * 1024
COPY_BLOCK = 1 << 20


def apply_grants(reader: Reader, writer: BundleWriter, encounter_id: str, plan: Plan) -> int:
    """Re-wrap the downloaded chunks the server holds grants for; returns how many."""
    grants = reader.api.json("GET", f"/v1/encounters/{encounter_id}/grants",
                             auth=True)["grants"]
    devices = [str(d["device_key"]) for d in plan.devices]
    planned = {(c.desc.stream, c.desc.seq): c for c in plan.planned}
    count = 0
    for item in grants:
        chunk = planned.get((str(item["stream"]), int(item["seq"])))
        if chunk is not None and _apply(writer, chunk, item, devices):
            count += 1
    return count


def _apply(writer: BundleWriter, chunk: PlannedChunk, item: dict[str, Any],
           devices: Sequence[str]) -> bool:
    desc = chunk.desc
    where = f"chunk {desc.stream} seq {desc.seq}"
    age = writer.path_of(chunk_path(desc.stream, desc.seq, AGE_SUFFIX))
    if not complete(age, desc):
        return False  # not downloaded (refused), or re-wrapped by an earlier run already
    try:
        header = base64.b64decode(str(item["header"]), validate=True)
        grant, _signers = open_grant(str(item["grant"]), devices)
        check_grant_header(grant, header)
    except (CryptoError, binascii.Error, ValueError) as exc:
        raise UntrustedServer(f"{where}: the server's grant does not verify ({exc}); nothing "
                              "was re-wrapped")
    with open(age, "rb") as stream:
        offset = find_header_end(stream.read(HEAD_BYTES))
    if (grant.encounter, grant.stream, grant.seq) != (desc.encounter, desc.stream, desc.seq) \
            or grant.chunk_sha256 != desc.sha256 or grant.payload_offset != offset:
        raise UntrustedServer(f"{where}: the server's grant is for another chunk; nothing was "
                              "re-wrapped")
    _rewrite(writer, age, chunk, header, str(item["grant"]), offset)
    return True


def _rewrite(writer: BundleWriter, age: Path, chunk: PlannedChunk, header: bytes, note: str,
             offset: int) -> None:
    with open(age, "rb") as stream:
        original_header = stream.read(offset)
        writer.write_json(chunk_path(chunk.desc.stream, chunk.desc.seq, GRANT_SUFFIX), {
            "grant": note, "original_header": base64.b64encode(original_header).decode()})
        part = age.with_name(age.name + ".rewrap")
        with open(part, "wb") as out:
            out.write(header)
            while block := stream.read(COPY_BLOCK):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    os.replace(part, age)
