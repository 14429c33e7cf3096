"""Queries about each encounter's Merkle log: leaves and the checkpoints signed over them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from server.tlog.frontier import Frontier


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root: bytes
    note: str


class LogQueries:
    db: Database

    def leaf_hashes(self, encounter_id: str, size: int) -> list[bytes]:
        """Hashes of leaves [0, size) in order."""
        cursor = self.db.execute(
            "SELECT hash FROM log_leaves WHERE encounter_id = ? AND leaf_index < ? "
            "ORDER BY leaf_index", [encounter_id, size],
        )
        return [bytes(row[0]) for row in cursor]

    def leaves(self, encounter_id: str, start: int, end: int) -> list[tuple[int, bytes]]:
        cursor = self.db.execute(
            "SELECT leaf_index, data FROM log_leaves WHERE encounter_id = ? "
            "AND leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
            [encounter_id, start, end],
        )
        return [(int(row[0]), bytes(row[1])) for row in cursor]

    def frontier(self, encounter_id: str) -> Frontier:
        row = self.db.execute("SELECT log_size, log_frontier FROM encounters "
                              "WHERE encounter_id = ?", [encounter_id]).fetchone()
        return Frontier.from_bytes(int(row[0]), bytes(row[1]))

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
            cursor = self.db.execute(
                "SELECT tree_size, root, note FROM checkpoints WHERE encounter_id = ? "
                "ORDER BY tree_size DESC LIMIT 1", [encounter_id],
            )
        else:
            cursor = self.db.execute(
                "SELECT tree_size, root, note FROM checkpoints WHERE encounter_id = ? "
                "AND tree_size = ?", [encounter_id, tree_size],
            )
        row = cursor.fetchone()
        return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2])) if row else None
