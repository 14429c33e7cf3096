"""RFC 6962 Merkle tree hashing with the RFC 9162 inclusion and consistency proof algorithms.

Trees are given as the full list of their leaf hashes (`leaf_hash(leaf bytes)`); a tree's size
is the length of that list. Proof generation follows RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1
(PROOF/SUBPROOF); verification follows §2.1.3.2 and §2.1.4.2 step by step, so any element
flipped, dropped or added, or any wrong index, size or root, raises BadProof.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from crypto.errors import BadProof, MalformedError

HASH_SIZE = 32
MAX_TREE_SIZE = 2**64  # sizes are uint64 on the wire (RFC 9162)
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split_point(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a non-empty range, without copying the list."""
    if end - start == 1:
        return leaves[start]
    k = _split_point(end - start)
    return node_hash(_subtree_root(leaves, start, start + k), _subtree_root(leaves, start + k, end))


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the tree; the empty tree's root is SHA-256 of the empty string."""
    if not leaf_hashes:
        return EMPTY_ROOT
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]): the sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(leaf_hashes):
        raise MalformedError(f"leaf index {index} is outside a tree of size {len(leaf_hashes)}")
    path: list[bytes] = []
    start, end = 0, len(leaf_hashes)
    while end - start > 1:
        k = _split_point(end - start)
        if index < start + k:
            path.append(_subtree_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            path.append(_subtree_root(leaf_hashes, start, start + k))
            start += k
    path.reverse()  # collected root-down; the proof lists them leaf-up
    return path


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, D[n]) for 0 < old_size <= n; empty when old_size == n."""
    n = len(leaf_hashes)
    if not 0 < old_size <= n:
        raise MalformedError(f"old size {old_size} is outside 1..{n}")
    path: list[bytes] = []
    start, end, m, complete = 0, n, old_size, True
    # SUBPROOF(m, D[start:end], complete), unrolled: each step emits one sibling.
    while m != end - start:
        k = _split_point(end - start)
        if m <= k:
            path.append(_subtree_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            path.append(_subtree_root(leaf_hashes, start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append(_subtree_root(leaf_hashes, start, end))
    path.reverse()
    return path


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise BadProof(f"{what} must be a {HASH_SIZE}-byte hash")
    return bytes(value)


def _check_size(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_TREE_SIZE:
        raise BadProof(f"{what} must be an integer in [0, 2**64)")
    return value


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise BadProof unless `proof` puts `leaf_hash` at `index` under `root`."""
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    _check_size(index, "leaf index")
    _check_size(tree_size, "tree size")
    path = [_check_hash(p, "proof element") for p in proof]
    if index >= tree_size:
        raise BadProof(f"leaf index {index} is outside a tree of size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in path:
        if sn == 0:
            raise BadProof("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise BadProof("inclusion proof is too short")
    if not _same(r, root):
        raise BadProof("inclusion proof does not lead to the root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise BadProof unless the tree of `old_size` is a prefix of the new one.

    old_size must be > 0. Equal sizes need an empty proof and equal roots.
    """
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    path = [_check_hash(p, "proof element") for p in proof]
    if old_size == 0 or old_size > new_size:
        raise BadProof(f"no consistency proof exists from size {old_size} to {new_size}")
    if old_size == new_size:
        if path or not _same(old_root, new_root):
            raise BadProof("trees of equal size must have equal roots and an empty proof")
        return
    _verify_consistency_path(old_size, new_size, old_root, new_root, path)


def _verify_consistency_path(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: list[bytes]
) -> None:
    if not path:
        raise BadProof("consistency proof is empty")
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path = [old_root, *path]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise BadProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise BadProof("consistency proof is too short")
    if not _same(fr, old_root) or not _same(sr, new_root):
        raise BadProof("consistency proof does not lead to both roots")
