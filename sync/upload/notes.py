"""Notes and locations the person adds to an encounter's event log (`safehold device note`).

Each entry is sealed as one chunk and committed to the outbox like any other, so it is uploaded
by the one upload queue of the device (sync/upload/uplink.py) with the event log's priority.

Where it goes:
- While the event log is open (a recording of the encounter is running, in this process or
  another one on the same state folder), the entry is the next chunk of stream `log`. The seq is
  taken inside the outbox's IMMEDIATE transaction (Outbox.add_log_entry), the same one the
  recorder uses, so a note and a recording's entries never collide on a seq.
- Once the log is closed (its `stop` entry was the final chunk), no chunk may follow it: the
  server refuses anything after a final chunk (409 stream_closed). The entry then goes to the
  stream `addenda`: the same lines, never final, because notes may be added at any time after.
  That they were written after the recording stopped is itself worth knowing to a court, so
  they are kept apart (decrypt writes them to addenda.jsonl).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crypto.slot import Slot
from sync.errors import StateError
from sync.upload.eventlog import encode_entry
from sync.upload.outbox import Outbox, SealedChunk
from sync.upload.recorder import LOG_STREAM, Sealer

ADDENDA_STREAM = "addenda"


@dataclass
class Added:
    chunks: list[SealedChunk]

    @property
    def streams(self) -> set[str]:
        return {chunk.key.stream for chunk in self.chunks}


def check_encounter_here(outbox: Outbox, encounter: str) -> None:
    """Only an encounter begun on this device: its event log's seqs are counted in this outbox
    (another device's log has seqs this device cannot see, so an entry would collide)."""
    row = outbox.encounter(encounter)
    if row is None:
        raise StateError(f"encounter {encounter} is not known on this device: add notes to an "
                         "encounter `safehold device record` began here (it printed the id)")
    if row.get("origin") != "local":
        raise StateError(f"encounter {encounter} was recorded on another device of the "
                         "account; add notes to it on that device")


def add_entries(outbox: Outbox, sealer: Sealer, encounter: str,
                entries: list[dict[str, Any]]) -> Added:
    """Seal and commit each entry, in order, to the log (or to its addenda once closed)."""
    added: list[SealedChunk] = []
    for entry in entries:
        added.append(_add_one(outbox, sealer, encounter, encode_entry(entry)))
    return Added(added)


def _add_one(outbox: Outbox, sealer: Sealer, encounter: str, data: bytes) -> SealedChunk:
    def seal_log(seq: int, final: bool) -> SealedChunk:
        return sealer.seal(data, Slot(encounter, LOG_STREAM, seq, final))

    def seal_addendum(seq: int, _final: bool) -> SealedChunk:
        return sealer.seal(data, Slot(encounter, ADDENDA_STREAM, seq, False))

    chunk = outbox.add_log_entry(encounter, seal_log)
    if chunk is None:  # the log closed: the addenda stream, which is never closed
        chunk = outbox.add_log_entry(encounter, seal_addendum, stream=ADDENDA_STREAM)
    if chunk is None:
        raise StateError(f"encounter {encounter}'s addenda stream is closed")
    return chunk
