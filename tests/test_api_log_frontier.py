"""The server's O(log n) log appends give exactly crypto.merkle's roots and proofs."""

from __future__ import annotations

import hashlib

import pytest

from crypto.merkle import inclusion_proof, leaf_hash, root_hash, verify_inclusion
from server.tlog.frontier import Frontier


def test_frontier_matches_full_recomputation_for_every_size_up_to_300() -> None:
    frontier, hashes = Frontier.empty(), []
    assert frontier.root() == root_hash([])
    for index in range(300):
        leaf = leaf_hash(hashlib.sha256(str(index).encode()).digest())
        hashes.append(leaf)
        frontier, proof = frontier.append(leaf)
        assert frontier.size == index + 1
        assert frontier.root() == root_hash(hashes)
        assert proof == inclusion_proof(index, hashes)
        verify_inclusion(leaf, index, index + 1, proof, frontier.root())
        assert Frontier.from_bytes(frontier.size, frontier.to_bytes()) == frontier


def test_frontier_refuses_bytes_of_the_wrong_length() -> None:
    with pytest.raises(ValueError):
        Frontier.from_bytes(3, b"\x00" * 32)  # size 3 = two perfect subtrees
