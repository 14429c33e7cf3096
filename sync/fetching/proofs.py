"""Consistency proofs computed from the leaves a fetch already holds, instead of one request each.

Once the leaves are checked against the latest signed root, the RFC 9162 proof from any older
size to it is a function of those leaves alone; a verifier checks it against both signed
checkpoints, so it does not matter who computed it. Computing it here costs no request, and
the server is spared an O(n) proof per receipt.

`crypto.merkle.consistency_proof` recomputes every subtree for each proof (O(n) each, O(n^2)
for a recording's thousands of receipt sizes). The same algorithm here shares subtree roots
between proofs: every node a proof names is a perfect, aligned subtree or a right edge of the
latest tree, so all the proofs of one fetch cost O(n + proofs x log n) hashes.
"""

from __future__ import annotations

from collections.abc import Sequence

from crypto.merkle import node_hash

MEMO_MIN = 16  # nodes over fewer leaves are recomputed (<= 15 hashes) rather than kept


class SubtreeRoots:
    """MTH(D[start:end]) of one tree's leaf hashes, each node of MEMO_MIN leaves or more
    computed once (so the memo holds about n / 8 roots, not 2n)."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.leaves = leaf_hashes
        self._memo: dict[tuple[int, int], bytes] = {}

    def root(self, start: int, end: int) -> bytes:
        if end - start == 1:
            return self.leaves[start]
        key = (start, end)
        found = self._memo.get(key)
        if found is None:
            k = _split_point(end - start)
            found = node_hash(self.root(start, start + k), self.root(start + k, end))
            if end - start >= MEMO_MIN:
                self._memo[key] = found
        return found


def _split_point(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def consistency_proof(old_size: int, tree: SubtreeRoots) -> list[bytes]:
    """PROOF(old_size, D[n]) (RFC 9162 §2.1.4.1) for 0 < old_size <= n, as crypto.merkle makes
    it (tests/test_fetch_batch.py compares the two)."""
    n = len(tree.leaves)
    if not 0 < old_size <= n:
        raise ValueError(f"old size {old_size} is outside 1..{n}")
    path: list[bytes] = []
    start, end, m, complete = 0, n, old_size, True
    while m != end - start:
        k = _split_point(end - start)
        if m <= k:
            path.append(tree.root(start + k, end))
            end = start + k
        else:
            path.append(tree.root(start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append(tree.root(start, end))
    path.reverse()
    return path
