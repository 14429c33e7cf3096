"""One-encounter shares: a recipient (a lawyer) who may read exactly one encounter.

A share starts as a contact invitation scoped to one encounter (`encounter_shares`). Once its
recipient accepted and the owner's device confirmed her key, she is an `active` contact whose
only readable encounter is that one (`share_release`, consulted by trust/release.py for every
read and listing); revoking the contact ends it. The owner's device then re-wraps each chunk's
file key to her and posts the new age headers with signed grants (crypto/grant.py); the server
checks each grant against what it holds before storing the header: signed by a device of the
account, for this chunk (its SHA-256 and header length), her pinned recipient, and a header
that is the chunk's slot stanza plus one X25519 stanza with the digest signed. It cannot check
the header MAC (that needs the file key); her decryption does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from crypto.age.format import find_header_end
from crypto.descriptor import parse_time
from crypto.errors import BadSignature, CryptoError
from crypto.grant import Grant, check_grant_header, open_grant
from server.context import Services
from server.errors import ApiError, not_found
from server.identity.auth import CONTACT, Caller, iso
from server.store.contacts import ACTIVE, Contact
from server.store.encounters import Encounter
from server.store.metadata import Tx
from server.store.shares import StoredGrant

SHARE = "share"  # the release reason a share recipient's encounter is listed with
MAX_GRANTS = 1000  # per request
HEAD_BYTES = 64 * 1024


def check_share_scope(tx: Tx, account_id: str, encounter_id: str | None) -> None:
    """A share invitation must name an encounter of the inviting account."""
    if encounter_id is None:
        return
    encounter = tx.encounter(encounter_id)
    if encounter is None or encounter.account_id != account_id:
        raise ApiError(400, "bad_invitation", "encounter_id is not an encounter of this "
                       "account.")


def share_release(contact: Contact, encounter: Encounter, scoped: str) -> tuple[Any, str] | None:
    """(moment, reason) if the share recipient may read `encounter` now: hers, active."""
    if contact.status != ACTIVE or contact.account_id != encounter.account_id \
            or encounter.encounter_id != scoped or contact.confirmed_at is None:
        return None
    return parse_time(contact.confirmed_at), SHARE


def _bad(where: str, message: str) -> ApiError:
    return ApiError(400, "bad_grant", f"{where}: {message}")


def _share_contact(tx: Tx, caller: Caller, encounter_id: str, contact_id: str) -> Contact:
    contact = tx.contact(contact_id)
    if contact is None or contact.account_id != caller.account_id \
            or tx.shared_encounter_of_contact(contact_id) != encounter_id:
        raise not_found("There is no share of this encounter with that contact.")
    if contact.status != ACTIVE:
        raise ApiError(409, "share_not_active", f"The share with {contact_id} is "
                       f"{contact.status}: nothing is granted to a recipient who is not an "
                       "active, confirmed contact.")
    return contact


def _checked(svc: Services, tx: Tx, encounter_id: str, contact: Contact, keys: Sequence[str],
             item: dict[str, Any], now: str) -> StoredGrant:
    stream, seq = item["stream"], item["seq"]
    where = f"chunk {stream} seq {seq}"
    record = tx.chunk(encounter_id, stream, seq)
    if record is None:
        raise _bad(where, "the server holds no such chunk of this encounter")
    try:
        header = base64.b64decode(item["header"], validate=True)
    except (binascii.Error, ValueError):
        raise _bad(where, "header is not base64")
    try:
        grant, _signers = open_grant(item["grant"], keys)
    except BadSignature:
        raise _bad(where, "the grant is not signed by a device of this account (forged)")
    except CryptoError as exc:
        raise _bad(where, f"the grant is not a valid signed statement ({exc})")
    _match(grant, record.sha256, encounter_id, stream, seq, contact, where)
    try:
        check_grant_header(grant, header)
    except CryptoError as exc:
        raise _bad(where, str(exc))
    head = svc.blobs.get_range(record.blob_key, 0, min(record.size, HEAD_BYTES) - 1)
    if find_header_end(head) != grant.payload_offset:
        raise _bad(where, "the grant's payload offset is not where the chunk's payload starts")
    return StoredGrant(contact.contact_id, encounter_id, stream, seq, item["header"],
                       item["grant"], now)


def _match(grant: Grant, sha256: str, encounter_id: str, stream: str, seq: int,
           contact: Contact, where: str) -> None:
    if (grant.encounter, grant.stream, grant.seq) != (encounter_id, stream, seq):
        raise _bad(where, f"the grant is for {grant.stream} seq {grant.seq} of "
                   f"{grant.encounter}, not for this chunk")
    if grant.chunk_sha256 != sha256:
        raise _bad(where, "the grant names another chunk (its SHA-256 differs from the stored "
                   "chunk's)")
    if grant.recipient != contact.age_recipient:
        raise _bad(where, "the grant is for another recipient than this share's")


def store_grants(svc: Services, caller: Caller, encounter_id: str,
                 body: dict[str, Any]) -> int:
    """Check every grant, then store all of them (or none); returns how many are new."""
    from server.trust.access import writable_encounter

    now = iso(svc.now())
    with svc.store.write() as tx:
        writable_encounter(tx, caller, encounter_id)
        contact = _share_contact(tx, caller, encounter_id, body["contact_id"])
        keys = [d.device_key for d in tx.devices_of(caller.account_id)]
        done = {(g.stream, g.seq) for g in tx.grants_of(encounter_id, contact.contact_id)}
        # Every grant is checked, even one for a chunk already granted (kept as it was).
        checked = [_checked(svc, tx, encounter_id, contact, keys, item, now)
                   for item in body["grants"]]
        new = [g for g in checked if (g.stream, g.seq) not in done]
        for grant in new:
            tx.insert_grant(grant)
    return len(new)


def grants_view(tx: Tx, caller: Caller, encounter_id: str) -> list[dict[str, Any]]:
    """A share recipient sees her own grants; the owner's devices see every grant."""
    contact_id = caller.contact_id if caller.kind == CONTACT else None
    return [{"contact_id": g.contact_id, "stream": g.stream, "seq": g.seq, "header": g.header,
             "grant": g.grant_note, "created_at": g.created_at}
            for g in tx.grants_of(encounter_id, contact_id)]
