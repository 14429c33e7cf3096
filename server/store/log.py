"""Queries about each encounter's Merkle log: leaves and the checkpoints signed over them."""

from __future__ import annotations

from dataclasses import dataclass

from server.store.sql import Connection
from server.tlog.frontier import Frontier


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root: bytes
    note: str


class LogQueries:
    db: Connection

    def leaf_hashes(self, encounter_id: str, size: int) -> list[bytes]:
        """Hashes of leaves [0, size) in order."""
        rows = self.db.query(
            "SELECT hash FROM log_leaves WHERE encounter_id = ? AND leaf_index < ? "
            "ORDER BY leaf_index", [encounter_id, size],
        )
        return [bytes(row["hash"]) for row in rows]

    def leaves(self, encounter_id: str, start: int, end: int) -> list[tuple[int, bytes]]:
        rows = self.db.query(
            "SELECT leaf_index, data FROM log_leaves WHERE encounter_id = ? "
            "AND leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
            [encounter_id, start, end],
        )
        return [(int(row["leaf_index"]), bytes(row["data"])) for row in rows]

    def lock_log(self, encounter_id: str) -> None:
        """Hold the encounter's log until the transaction ends, before deciding what to append
        (PostgreSQL: a row lock, so two API nodes admit the same chunk once; SQLite's write
        transaction already excludes every other writer)."""
        if self.db.for_update:
            self.db.one("SELECT 1 FROM encounters WHERE "  # noqa: S608 (a fixed suffix)
                        f"encounter_id = ?{self.db.for_update}", [encounter_id])

    def frontier(self, encounter_id: str) -> Frontier:
        """The encounter's log, to append to: locked until the transaction ends, so appends
        through any number of API nodes get one leaf index each, densely, in one order."""
        row = self.db.one("SELECT log_size, log_frontier FROM encounters "  # noqa: S608
                          f"WHERE encounter_id = ?{self.db.for_update}", [encounter_id])
        assert row is not None, encounter_id
        return Frontier.from_bytes(int(row["log_size"]), bytes(row["log_frontier"]))

    def append_leaf(self, encounter_id: str, leaf_hash: bytes, data: bytes,
                    frontier: Frontier) -> None:
        """Store leaf number frontier.size - 1; the encounter's log becomes `frontier`."""
        self.db.execute(
            "INSERT INTO log_leaves (encounter_id, leaf_index, hash, data) VALUES (?, ?, ?, ?)",
            [encounter_id, frontier.size - 1, leaf_hash, data],
        )
        self.db.execute(
            "UPDATE encounters SET log_size = ?, log_frontier = ? WHERE encounter_id = ?",
            [frontier.size, frontier.to_bytes(), encounter_id],
        )

    def insert_checkpoint(self, encounter_id: str, checkpoint: StoredCheckpoint,
                          created_at: str) -> None:
        self.db.execute(
            "INSERT INTO checkpoints (encounter_id, tree_size, root, note, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [encounter_id, checkpoint.tree_size, checkpoint.root, checkpoint.note, created_at],
        )

    def checkpoint(self, encounter_id: str,
                   tree_size: int | None = None) -> StoredCheckpoint | None:
        """The checkpoint signed at `tree_size`, or the latest one."""
        if tree_size is None:
            row = self.db.one(
                "SELECT tree_size, root, note FROM checkpoints WHERE encounter_id = ? "
                "ORDER BY tree_size DESC LIMIT 1", [encounter_id],
            )
        else:
            row = self.db.one(
                "SELECT tree_size, root, note FROM checkpoints WHERE encounter_id = ? "
                "AND tree_size = ?", [encounter_id, tree_size],
            )
        if row is None:
            return None
        return StoredCheckpoint(int(row["tree_size"]), bytes(row["root"]), str(row["note"]))
