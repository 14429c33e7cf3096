"""The owner's side of a one-encounter share (`safehold device share`).

1. `make_share`: a contact invitation (crypto/invitation.py) whose terms name one encounter;
   the recipient joins it like any contact and the server lets her read that encounter only.
2. Her key is verified with the invitation secret and pinned by `refresh_contacts`
   (sync/people/owner.py) exactly as a contact's, with a safety number, but into the book's
   `share_recipients`, never into the recipients new recordings are sealed to.
3. `grant_pending`: for every chunk of a shared encounter that she has no grant for yet, fetch
   the stored age file, check it against its descriptor (signed by a device of the roster),
   unwrap its file key with the recovery identity, write a new header for her
   (crypto/age/rewrap.py), sign a grant (crypto/grant.py) and post header + grant. The media
   payload is never uploaded again. Chunks that arrive later (a live encounter) are granted on
   the next `device share` or `device sync` run; a revoked share is never granted to again.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crypto.age import read_header
from crypto.age.rewrap import rewrap_header
from crypto.descriptor import open_descriptor
from crypto.errors import CryptoError
from crypto.grant import Grant, sign_grant
from sync.api import ApiClient
from sync.device.roster import owner_roster
from sync.device.state import Settings, StateFolder
from sync.errors import UntrustedServer
from sync.people.book import ContactBook, ShareRecipient
from sync.people.owner import make_invitation
from sync.upload.outbox import now_rfc3339

GRANT_BATCH = 200
SHARE_NAME = "shared encounter"


def make_share(book: ContactBook, settings: Settings, api: ApiClient, encounter: str,
               name: str | None, now: float) -> tuple[str, str]:
    """(code, expires_at) of an invitation to read `encounter` only (policy field unused)."""
    api.encounter(encounter)  # 404 (exit 3) unless it is an encounter of this account
    return make_invitation(book, settings, api, name or f"{SHARE_NAME} {encounter[:8]}",
                           "immediate", None, now,
                           encounter=encounter)


@dataclass
class GrantReport:
    granted: dict[str, int] = field(default_factory=dict)  # contact id -> chunks granted now
    problems: list[str] = field(default_factory=list)


def grant_pending(state: StateFolder, settings: Settings, api: ApiClient, book: ContactBook,
                  encounter: str | None = None) -> GrantReport:
    """Re-wrap every chunk not yet granted to each active share recipient (of `encounter`)."""
    report = GrantReport()
    shares = [s for s in book.share_recipients() if encounter in (None, s.encounter_id)]
    if not shares:
        return report
    devices = owner_roster(api, settings).devices
    identity, signing_key = state.recovery_identity(), state.device_signing_key()
    for share in shares:
        report.granted[share.contact_id] = _grant_share(api, share, devices, identity,
                                                        signing_key, report)
    return report


def _grant_share(api: ApiClient, share: ShareRecipient, devices: Sequence[str], identity: str,
                 signing_key: str, report: GrantReport) -> int:
    eid = share.encounter_id
    done = {(str(g["stream"]), int(g["seq"]))
            for g in api.json("GET", f"/v1/encounters/{eid}/grants", auth=True)["grants"]
            if g["contact_id"] == share.contact_id}
    held = api.encounter(eid)["streams"]
    todo = [(stream, seq) for stream, holding in sorted(held.items())
            for seq in holding["seqs"] if (stream, seq) not in done]
    items: list[dict[str, Any]] = []
    for stream, seq in todo:
        try:
            items.append(_rewrap(api, share, devices, identity, signing_key, stream, seq))
        except (CryptoError, UntrustedServer) as exc:
            report.problems.append(f"{eid} {stream} seq {seq}: not shared ({exc})")
    for start in range(0, len(items), GRANT_BATCH):
        api.json("POST", f"/v1/encounters/{eid}/grants", auth=True, json_body={
            "contact_id": share.contact_id, "grants": items[start:start + GRANT_BATCH]})
    return len(items)


def _rewrap(api: ApiClient, share: ShareRecipient, devices: Sequence[str], identity: str,
            signing_key: str, stream: str, seq: int) -> dict[str, Any]:
    body, note = api.get_chunk(share.encounter_id, stream, seq)
    desc, _signers = open_descriptor(note, list(devices))
    digest = hashlib.sha256(body).hexdigest()
    if (desc.encounter, desc.stream, desc.seq) != (share.encounter_id, stream, seq) \
            or desc.sha256 != digest or desc.size != len(body):
        raise UntrustedServer("the server's chunk does not match its signed descriptor")
    header = rewrap_header(body, [identity], [share.recipient])
    grant = Grant(share.encounter_id, stream, seq, share.recipient, digest,
                  read_header(body).payload_offset, hashlib.sha256(header).hexdigest(),
                  now_rfc3339())
    return {"stream": stream, "seq": seq, "header": base64.b64encode(header).decode("ascii"),
            "grant": sign_grant(grant, signing_key)}
