"""Each planned chunk's receipt and descriptor, a stream's by the page (GET
/v1/encounters/{id}/streams/{stream}/receipts) rather than one request per chunk; every field
checked for shape and bounded before it is kept.

A receipt's descriptor must be the very note the log holds at its leaf index (the plan checked
that note's signature); `safehold verify` then checks each receipt's checkpoint and inclusion
proof offline.
"""

from __future__ import annotations

from typing import Any

from sync.errors import ServerRefusal, UntrustedServer
from sync.fetching.limits import MAX_NOTE_CHARS, MAX_PROOF_HASHES
from sync.fetching.plan import Plan, PlannedChunk, Reader

RECEIPT_FIELDS = ("encounter_id", "stream", "seq", "leaf_index", "tree_size", "checkpoint",
                  "inclusion_proof", "received_at")
HASH_B64_CHARS = 44


def _bad(what: str) -> UntrustedServer:
    return UntrustedServer(f"the server sent a malformed receipt ({what}); nothing of it was kept")


def receipt_of(item: Any) -> tuple[dict[str, Any], str]:
    """(the receipt's fields, its descriptor note), or UntrustedServer if malformed/oversized."""
    if not isinstance(item, dict):
        raise _bad("not an object")
    receipt = {name: item.get(name) for name in RECEIPT_FIELDS}
    for name in ("seq", "leaf_index", "tree_size"):
        value = receipt[name]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise _bad(f"{name} is not a count")
    for name in ("encounter_id", "stream", "checkpoint", "received_at"):
        text = receipt[name]
        if not isinstance(text, str) or len(text) > MAX_NOTE_CHARS:
            raise _bad(f"{name} is not a string of at most {MAX_NOTE_CHARS} characters")
    proof = receipt["inclusion_proof"]
    if not isinstance(proof, list) or len(proof) > MAX_PROOF_HASHES \
            or not all(isinstance(h, str) and len(h) <= HASH_B64_CHARS for h in proof):
        raise _bad(f"inclusion proof is not a list of at most {MAX_PROOF_HASHES} hashes")
    note = item.get("descriptor")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise _bad("no descriptor note")
    return receipt, note


def _matched(receipt: dict[str, Any], note: str, chunk: PlannedChunk) -> dict[str, Any]:
    if note != chunk.note or receipt["leaf_index"] != chunk.index:
        raise UntrustedServer(f"the server's receipt for {chunk.desc.stream} seq {chunk.desc.seq} "
                              "names another descriptor or leaf than its own log holds")
    return receipt


def fetch_receipts(reader: Reader, plan: Plan, encounter_id: str,
                   wanted: list[PlannedChunk]) -> dict[int, dict[str, Any]]:
    """Receipts of `wanted`, by leaf index: each stream's pages in seq order from its first
    wanted seq, and one request each for any a page left out."""
    found: dict[int, dict[str, Any]] = {}
    streams: dict[str, dict[int, PlannedChunk]] = {}
    for chunk in wanted:
        streams.setdefault(chunk.desc.stream, {})[chunk.desc.seq] = chunk
    for stream, by_seq in streams.items():
        _pages(reader, plan, encounter_id, stream, by_seq, found)
    for chunk in wanted:
        if chunk.index not in found:  # a page left it out: ask for it alone
            receipt, note = receipt_of(_lone_receipt(reader, encounter_id, chunk))
            found[chunk.index] = _matched(receipt, note, chunk)
    return found


def _lone_receipt(reader: Reader, encounter_id: str, chunk: PlannedChunk) -> Any:
    desc = chunk.desc
    try:
        return reader.api.chunk_receipt(encounter_id, desc.stream, desc.seq)
    except ServerRefusal as exc:
        if exc.status != 404:
            raise
        # its own signed log holds the device's descriptor: the chunk was acknowledged, and
        # a server that no longer has it dropped evidence (issue 10), not a network problem
        raise UntrustedServer(f"the server's signed log lists {desc.stream} seq {desc.seq} "
                              f"(leaf {chunk.index}), but the server says it holds no such "
                              "chunk: acknowledged evidence was dropped") from exc


def _pages(reader: Reader, plan: Plan, encounter_id: str, stream: str,
           by_seq: dict[int, PlannedChunk], found: dict[int, dict[str, Any]]) -> None:
    """One stream's receipts, page by page; every page must move forward and stay in bounds."""
    start: int | None = min(by_seq)
    last = max(by_seq)
    per_page = plan.limits.receipts_per_page
    while start is not None and start <= last:
        page = reader.api.receipts(encounter_id, stream, start, per_page)
        items, after = page.get("receipts"), page.get("next")
        if not isinstance(items, list) or len(items) > per_page:
            raise UntrustedServer(f"the server sent a page of receipts longer than the "
                                  f"{per_page} asked for")
        previous = start - 1
        for item in items:
            receipt, note = receipt_of(item)
            seq = receipt["seq"]
            if receipt["stream"] != stream or seq <= previous:
                raise UntrustedServer(f"the server sent receipts of {stream} out of seq order "
                                      "or of another stream")
            previous = seq
            if seq in by_seq:
                found[by_seq[seq].index] = _matched(receipt, note, by_seq[seq])
        if after is not None and (not isinstance(after, int) or isinstance(after, bool)
                                  or after <= previous or after <= start):
            raise UntrustedServer("the server's page of receipts points back, not forward")
        start = after
