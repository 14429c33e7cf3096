"""Cheap appends to an encounter's Merkle log: the compact frontier of RFC 6962 trees.

A tree of size n is, left to right, the perfect subtrees of n's binary decomposition (largest
first). Keeping just their roots ("the frontier", popcount(n) hashes) is enough to append a leaf,
to compute the new root, and to give the new leaf's inclusion proof: in an RFC 6962 tree the
last leaf's siblings are exactly the frontier of the tree before it was added. So each upload
costs O(log n) hashes instead of rehashing the whole log; arbitrary proofs for readers are
computed from all leaf hashes with crypto.merkle, and tests check both agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from crypto.merkle import EMPTY_ROOT, HASH_SIZE, node_hash


@dataclass(frozen=True)
class Frontier:
    size: int
    hashes: tuple[bytes, ...]  # roots of the perfect subtrees, largest (leftmost) first

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, ())

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        count = bin(size).count("1")
        if len(data) != count * HASH_SIZE:
            raise ValueError(f"a frontier of size {size} has {count} hashes, not {len(data)} bytes")
        hashes = tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))
        return cls(size, hashes)

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def append(self, leaf_hash: bytes) -> tuple[Frontier, list[bytes]]:
        """The frontier with one more leaf, and that leaf's inclusion proof (leaf-up order)."""
        proof = list(reversed(self.hashes))
        hashes = list(self.hashes)
        carry, bits = leaf_hash, self.size
        while bits & 1:  # each trailing 1 bit is a perfect subtree the new leaf completes
            carry = node_hash(hashes.pop(), carry)
            bits >>= 1
        hashes.append(carry)
        return Frontier(self.size + 1, tuple(hashes)), proof
