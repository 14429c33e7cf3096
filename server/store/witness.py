"""Cosignatures the server collected from its witnesses, per encounter checkpoint."""

from __future__ import annotations

from sqlite_utils import Database

from server.store.sql import Connection


def create_cosignature_table(db: Database) -> None:
    # One line per (checkpoint, witness). The root is kept so a line is attached only to the
    # checkpoint it was made for, even after a restored backup re-signs a size differently.
    db.table("cosignatures").create(
        {"encounter_id": str, "tree_size": int, "root": bytes, "witness": str, "line": str,
         "created_at": str},
        pk=("encounter_id", "tree_size", "witness"),
        not_null=["root", "line", "created_at"],
    )


class WitnessQueries:
    db: Connection

    def cosignature_lines(self, encounter_id: str, tree_size: int, root: bytes) -> list[str]:
        rows = self.db.query(
            "SELECT line FROM cosignatures WHERE encounter_id = ? AND tree_size = ? AND root = ? "
            "ORDER BY witness", [encounter_id, tree_size, root])
        return [str(row["line"]) for row in rows]

    def witness_size(self, encounter_id: str, witness: str) -> int:
        """The largest size `witness` cosigned for this encounter (its state, as we believe)."""
        size = self.db.scalar(
            "SELECT MAX(tree_size) FROM cosignatures WHERE encounter_id = ? AND witness = ?",
            [encounter_id, witness])
        return int(size) if size is not None else 0

    def insert_cosignature(self, encounter_id: str, tree_size: int, root: bytes, witness: str,
                           line: str, created_at: str) -> None:
        self.db.execute(
            "INSERT INTO cosignatures (encounter_id, tree_size, root, witness, line, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (encounter_id, tree_size, witness) DO UPDATE "
            "SET root = excluded.root, line = excluded.line, created_at = excluded.created_at",
            [encounter_id, tree_size, root, witness, line, created_at])
