"""Queries about encounters and the chunks stored for them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.store.sql import Connection


@dataclass(frozen=True)
class Encounter:
    encounter_id: str
    account_id: str
    started_at: str
    created_at: str
    created_by: str
    log_size: int


_ENCOUNTER_COLUMNS = "encounter_id, account_id, started_at, created_at, created_by, log_size"


@dataclass(frozen=True)
class ChunkRecord:
    encounter_id: str
    stream: str
    seq: int
    final: bool
    size: int
    sha256: str
    descriptor: str
    device_id: str
    blob_key: str
    leaf_index: int
    tree_size: int
    checkpoint: str
    inclusion_proof: list[str]
    received_at: str

    def row(self) -> dict[str, Any]:
        row = dict(vars(self))
        row["final"] = int(self.final)
        row["inclusion_proof"] = json.dumps(self.inclusion_proof)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ChunkRecord:
        return cls(**{**row, "final": bool(row["final"]),
                      "inclusion_proof": json.loads(row["inclusion_proof"])})


@dataclass(frozen=True)
class StreamState:
    """What the server holds of one stream of an encounter."""

    seqs: list[int]
    final_seq: int | None


class EncounterQueries:
    db: Connection

    def encounter(self, encounter_id: str) -> Encounter | None:
        row = self.db.one(f"SELECT {_ENCOUNTER_COLUMNS} FROM encounters "  # noqa: S608
                      "WHERE encounter_id = ?", [encounter_id])
        return Encounter(**row) if row else None

    def encounters_of(self, account_id: str) -> list[Encounter]:
        """The account's encounters, oldest first; deleted ones (tombstoned) are gone."""
        rows = self.db.query(
            f"SELECT {_ENCOUNTER_COLUMNS} FROM encounters WHERE account_id = ? "  # noqa: S608
            "AND encounter_id NOT IN (SELECT encounter_id FROM encounter_tombstones) "
            "ORDER BY created_at, encounter_id",
            [account_id],
        )
        return [Encounter(**row) for row in rows]

    def insert_encounter(self, encounter: Encounter) -> bool:
        """False (nothing written) when the id was taken meanwhile, e.g. through another node."""
        return self.db.insert("encounters", {**vars(encounter), "log_frontier": b""},
                              ignore=True) == 1

    def chunk(self, encounter_id: str, stream: str, seq: int) -> ChunkRecord | None:
        row = self.db.one("SELECT * FROM chunks WHERE encounter_id = ? AND stream = ? "
                      "AND seq = ?", [encounter_id, stream, seq])
        return ChunkRecord.from_row(row) if row else None

    def chunk_run(self, encounter_id: str, stream: str, start: int, end: int,
                  limit: int | None = None) -> list[ChunkRecord]:
        """The stored chunks of seqs [start, end) of one stream in seq order (at most `limit`)."""
        sql = ("SELECT * FROM chunks WHERE encounter_id = ? AND stream = ? "
               "AND seq >= ? AND seq < ? ORDER BY seq")
        params: list[Any] = [encounter_id, stream, start, end]
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, limit]
        rows = self.db.query(sql, params)
        return [ChunkRecord.from_row(row) for row in rows]

    def insert_chunk(self, chunk: ChunkRecord) -> None:
        row = chunk.row()
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT INTO chunks ({columns}) VALUES ({marks})",  # noqa: S608
                        list(row.values()))

    def stream_state(self, encounter_id: str, stream: str) -> StreamState:
        return self.streams(encounter_id, only=stream).get(stream, StreamState([], None))

    def streams(self, encounter_id: str, only: str | None = None) -> dict[str, StreamState]:
        sql = "SELECT stream, seq, final FROM chunks WHERE encounter_id = ?"
        params: list[Any] = [encounter_id]
        if only is not None:
            sql += " AND stream = ?"
            params.append(only)
        states: dict[str, StreamState] = {}
        for row in self.db.query(sql + " ORDER BY stream, seq", params):
            state = states.setdefault(row["stream"], StreamState([], None))
            state.seqs.append(row["seq"])
            if row["final"]:
                states[row["stream"]] = StreamState(state.seqs, row["seq"])
        return states

    def stream_count(self, encounter_id: str) -> int:
        return int(self.db.scalar("SELECT COUNT(DISTINCT stream) FROM chunks "
                                  "WHERE encounter_id = ?", [encounter_id]))

    def stream_summary(self, encounter_id: str, stream: str) -> tuple[int | None, int | None]:
        """(highest seq stored, seq of the final chunk) of one stream; (None, None) if empty.

        Uploads keep a final chunk the highest of its stream (nothing is admitted after it, and
        it is refused below a seq already held), so one index probe answers both.
        """
        row = self.db.one(
            "SELECT seq, final FROM chunks WHERE encounter_id = ? AND stream = ? "
            "ORDER BY seq DESC LIMIT 1", [encounter_id, stream],
        )
        if row is None:
            return None, None
        return int(row["seq"]), (int(row["seq"]) if row["final"] else None)
