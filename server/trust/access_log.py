"""The access log: every read by a trusted contact, recorded before the answer leaves.

trust/access.py marks a request in which a contact was allowed to read an encounter; after the
handler made its (successful) response and before it is sent, `record_contact_read` writes, in
one transaction: the access row (who, what, when) the owner lists, and the same fact as a
server-signed `safehold.access/v1` leaf appended to the encounter's Merkle log with a new signed
checkpoint (one leaf per request). A batch read (server/api/batch.py: many receipts, or many
chunks' bytes, of one stream in one response) names the range of seqs it served in its one
leaf. If that fails the contact gets a 500 and not the data: no read goes unrecorded.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, g, has_request_context, request

from crypto.access import (
    WHAT_LIST,
    WHAT_LOG,
    AccessRecord,
    sign_access,
    what_chunk,
    what_descriptor,
)
from crypto.merkle import leaf_hash
from server.context import Services, services
from server.errors import envelope
from server.evidence.encounters import signed_checkpoint
from server.identity.auth import iso
from server.store.contacts import AccessEntry
from server.trust.access import CONTACT_READ

log = logging.getLogger("safehold.server")

# endpoint -> how its reads are named in the log (`what`); see crypto/access.py
_WHAT_BY_ENDPOINT = {"encounters.EncounterById": WHAT_LIST}
CONTACT_BATCH_READ = "safehold_contact_batch_read"  # flask.g: how a batch read names itself


def what_of(endpoint: str | None, view_args: dict[str, Any] | None) -> str:
    args = view_args or {}
    if endpoint == "chunks.Chunk":
        return what_chunk(str(args["stream"]), int(args["seq"]))
    if endpoint == "chunks.ChunkReceipt":
        return what_descriptor(str(args["stream"]), int(args["seq"]))
    if endpoint is not None and endpoint.startswith("log."):
        return WHAT_LOG
    return _WHAT_BY_ENDPOINT.get(str(endpoint), WHAT_LIST)


def note_batch_read(what: str) -> None:
    """Name a batch response's read (a range of seqs) for `record_contact_read`."""
    if has_request_context():
        setattr(g, CONTACT_BATCH_READ, what)


def record_access(svc: Services, contact_id: str, encounter_id: str, what: str) -> AccessEntry:
    """Append the read to the encounter's log (signed leaf + checkpoint) and the access table."""
    with svc.store.write() as tx:
        at = iso(svc.now())
        leaf = sign_access(AccessRecord(encounter_id, contact_id, what, at),
                           svc.signing_key).encode("utf-8")
        frontier, _proof = tx.frontier(encounter_id).append(leaf_hash(leaf))
        checkpoint = signed_checkpoint(svc, encounter_id, frontier.size, frontier.root())
        tx.append_leaf(encounter_id, leaf_hash(leaf), leaf, frontier)
        tx.insert_checkpoint(encounter_id, checkpoint, at)
        entry = AccessEntry(encounter_id, contact_id, what, at, frontier.size - 1)
        tx.insert_access(entry)
    return entry


def record_contact_read(response: Response) -> Response:
    """after_request: record a contact's successful read, or refuse to send it."""
    encounter_id = g.pop(CONTACT_READ, None)
    batch = g.pop(CONTACT_BATCH_READ, None)
    if encounter_id is None or response.status_code >= 400:
        return response
    try:
        record_access(services(), g.caller.contact_id, encounter_id,
                      batch or what_of(request.endpoint, request.view_args))
    except Exception:
        log.exception("could not record a contact's read; the data was not sent")
        return envelope(500, "internal_error", "The read could not be recorded in the access "
                        "log, so nothing was sent. Try again.")
    return response
