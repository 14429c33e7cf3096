"""Merkle log hashing and proofs: equal to pymerkle and to the published CT vectors; every
tampered proof refused.

pymerkle 7 (RFC 6962 hashing with sha256, "security" prefixes on) is the independent
implementation. Its inclusion paths are [leaf, sibling...], so ours must equal path[1:]. Its
consistency paths use a different (non-RFC) decomposition, so for those we compare with the RFC
9162 recursive definition of PROOF/SUBPROOF written out below, whose subtree hashes come from
pymerkle trees, and we check that pymerkle's own proofs vouch for the same roots.
"""

from __future__ import annotations

import functools
import hashlib

import pytest
from pymerkle import InmemoryTree
from pymerkle.hasher import MerkleHasher

from crypto.errors import BadProof, MalformedError
from crypto.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

MAX_N = 128
LEAF_DATA = [hashlib.sha256(b"entry %d" % i).digest()[: 1 + i % 40] for i in range(MAX_N)]
LEAVES = [leaf_hash(d) for d in LEAF_DATA]


@functools.cache
def pymerkle_tree(start: int, end: int) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")
    for data in LEAF_DATA[start:end]:
        tree.append_entry(data)
    return tree


def pymerkle_mth(start: int, end: int) -> bytes:
    """MTH(D[start:end]) as pymerkle computes it."""
    return pymerkle_tree(start, end).get_root()


FULL = pymerkle_tree(0, MAX_N)  # its prefixes are every tree of size 1..MAX_N


def rfc_subproof(m: int, start: int, end: int, complete: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[start:end], b), literally, with pymerkle subtree hashes."""
    n = end - start
    if m == n:
        return [] if complete else [pymerkle_mth(start, end)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return rfc_subproof(m, start, start + k, complete) + [pymerkle_mth(start + k, end)]
    return rfc_subproof(m - k, start + k, end, False) + [pymerkle_mth(start, start + k)]


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# ------------------------------------------------------------------ hashing


def test_leaf_and_node_hashing_match_pymerkle_and_rfc6962() -> None:
    hasher = MerkleHasher("sha256", security=True)
    assert leaf_hash(b"abc") == hasher.hash_buff(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = LEAVES[0], LEAVES[1]
    assert node_hash(a, b) == hasher.hash_pair(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest() == FULL.get_root(0)


# The Certificate Transparency reference tree (transparency-dev/merkle testonly, from RFC 6962's
# C++ implementation): leaf inputs, the root at every size, and published proofs.
CT_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (3, 8): ["0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}  # fmt: skip
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}  # fmt: skip


def test_certificate_transparency_reference_vectors() -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in CT_INPUTS]
    assert [root_hash(leaves[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    for (index, size), want in CT_INCLUSION.items():
        assert [p.hex() for p in inclusion_proof(index, leaves[:size])] == want
    for (old, new), want in CT_CONSISTENCY.items():
        proof = consistency_proof(old, leaves[:new])
        assert [p.hex() for p in proof] == want
        verify_consistency(old, new, root_hash(leaves[:old]), root_hash(leaves[:new]), proof)


# ------------------------------------------------------------------ equal to pymerkle


@pytest.mark.parametrize("n", range(1, MAX_N + 1))
def test_roots_and_inclusion_proofs_equal_pymerkle(n: int) -> None:
    leaves = LEAVES[:n]
    root = root_hash(leaves)
    assert root == FULL.get_root(n)
    for index in range(n):
        theirs = FULL.prove_inclusion(index + 1, n)  # pymerkle counts leaves from one
        ours = inclusion_proof(index, leaves)
        assert theirs.path[0] == leaves[index]
        assert ours == theirs.path[1:]
        verify_inclusion(leaves[index], index, n, ours, FULL.get_root(n))


@pytest.mark.parametrize("n", range(1, MAX_N + 1))
def test_consistency_proofs_equal_rfc_definition_over_pymerkle_hashes(n: int) -> None:
    leaves = LEAVES[:n]
    new_root = FULL.get_root(n)
    for old in range(1, n + 1):
        ours = consistency_proof(old, leaves)
        assert ours == rfc_subproof(old, 0, n, True)
        old_root = FULL.get_root(old)
        verify_consistency(old, n, old_root, new_root, ours)
        # pymerkle's own proof vouches for the same pair of roots.
        FULL.prove_consistency(old, n).verify(old_root, new_root)


# ------------------------------------------------------------------ tampering


@functools.cache
def honest_root(size: int) -> bytes:
    """The real root of the tree of `size` leaves (any root for sizes no tree has here)."""
    return root_hash(LEAVES[:size]) if 0 < size <= MAX_N else EMPTY_ROOT


# A proof binds a size only together with the root of that size: the root of a 3-leaf tree is
# also the root of a hypothetical 4-leaf tree whose right subtree hash is leaf 2's hash, and the
# RFC 9162 verifier cannot tell. Checkpoints sign size and root together, so a wrong size is
# always tried with the honest root of that size.
Variant = tuple[int, int, list[bytes], bytes]


def inclusion_tamperings(index: int, n: int, proof: list[bytes]) -> list[Variant]:
    """(index, size, proof, root) variants that must all be refused for leaf `index` of tree n."""
    root = honest_root(n)
    proofs = [proof[:i] + [flip(proof[i], i % 8)] + proof[i + 1 :] for i in range(len(proof))]
    proofs += [proof[:i] + proof[i + 1 :] for i in range(len(proof))]
    proofs += [proof[:i] + [proof[i][:31]] + proof[i + 1 :] for i in range(len(proof))]
    proofs += [proof[:i] + [proof[i] + b"\x00"] + proof[i + 1 :] for i in range(len(proof))]
    proofs += [[*proof, LEAVES[0]], [LEAVES[0], *proof]]
    if len(proof) > 1:
        proofs.append(proof[::-1])
    variants = [(index, n, bad, root) for bad in proofs]
    wrong_indexes = {index - 1, index + 1, index ^ 1, 0, n - 1, n, 2 * n} - {index}
    variants += [(wrong, n, proof, root) for wrong in wrong_indexes if wrong >= 0]
    wrong_sizes = {n - 1, n + 1, 2 * n, 1 << n.bit_length(), 0} - {n}
    variants += [(index, wrong, proof, honest_root(wrong)) for wrong in wrong_sizes]
    return variants


@pytest.mark.parametrize("n", range(1, MAX_N + 1))
def test_every_tampered_inclusion_proof_is_refused(n: int) -> None:
    leaves = LEAVES[:n]
    root = root_hash(leaves)
    for index in range(n):
        proof = inclusion_proof(index, leaves)
        for claimed_index, claimed_size, bad, claimed_root in inclusion_tamperings(index, n, proof):
            with pytest.raises(BadProof):
                verify_inclusion(leaves[index], claimed_index, claimed_size, bad, claimed_root)
        with pytest.raises(BadProof):
            verify_inclusion(flip(leaves[index]), index, n, proof, root)
        with pytest.raises(BadProof):
            verify_inclusion(leaves[index], index, n, proof, flip(root, 7))


ConsistencyVariant = tuple[int, int, list[bytes], bytes, bytes]


def consistency_tamperings(old: int, n: int, proof: list[bytes]) -> list[ConsistencyVariant]:
    """(old size, new size, proof, old root, new root) variants that must all be refused."""
    old_root, new_root = honest_root(old), honest_root(n)
    proofs = [proof[:i] + [flip(proof[i], i % 8)] + proof[i + 1 :] for i in range(len(proof))]
    proofs += [proof[:i] + proof[i + 1 :] for i in range(len(proof))]
    proofs += [proof[:i] + [proof[i][:31]] + proof[i + 1 :] for i in range(len(proof))]
    proofs += [[*proof, LEAVES[0]], [old_root, *proof]]  # the old root is never in the proof
    if len(proof) > 1:
        proofs.append(proof[::-1])
    variants = [(old, n, bad, old_root, new_root) for bad in proofs]
    for wrong_old in {old - 1, old + 1, 0, n + 1} - {old}:
        variants.append((wrong_old, n, proof, honest_root(wrong_old), new_root))
    for wrong_new in {n - 1, n + 1, 2 * n, 0} - {n}:
        variants.append((old, wrong_new, proof, old_root, honest_root(wrong_new)))
    variants.append((old, n, proof, flip(old_root), new_root))
    variants.append((old, n, proof, old_root, flip(new_root, 3)))
    if old < n:  # a rewritten history: the old tree's last leaf replaced
        forked = [*LEAVES[: old - 1], leaf_hash(b"forged"), *LEAVES[old:n]]
        variants.append((old, n, proof, old_root, root_hash(forked)))
    return variants


@pytest.mark.parametrize("n", range(1, MAX_N + 1))
def test_every_tampered_consistency_proof_is_refused(n: int) -> None:
    leaves = LEAVES[:n]
    for old in range(1, n + 1):
        proof = consistency_proof(old, leaves)
        for m, size, bad, old_root, new_root in consistency_tamperings(old, n, proof):
            with pytest.raises(BadProof):
                verify_consistency(m, size, old_root, new_root, bad)


def test_out_of_range_arguments() -> None:
    leaves = LEAVES[:5]
    root = root_hash(leaves)
    for bad_index in (-1, 5):
        with pytest.raises(MalformedError):
            inclusion_proof(bad_index, leaves)
    for bad_old in (0, 6, -1):
        with pytest.raises(MalformedError):
            consistency_proof(bad_old, leaves)
    with pytest.raises(BadProof):  # the empty tree holds nothing
        verify_inclusion(leaves[0], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(BadProof):
        verify_inclusion(leaves[0], -1, 5, inclusion_proof(0, leaves), root)
    with pytest.raises(BadProof):
        verify_inclusion(leaves[0], 0, 2**64, inclusion_proof(0, leaves), root)
    with pytest.raises(BadProof):  # old size 0 has no proof under RFC 9162
        verify_consistency(0, 5, EMPTY_ROOT, root, [])
    with pytest.raises(BadProof):  # equal sizes need equal roots
        verify_consistency(5, 5, root, flip(root), [])
    with pytest.raises(BadProof):  # and an empty proof
        verify_consistency(5, 5, root, root, [leaves[0]])
    verify_consistency(5, 5, root, root, [])
    with pytest.raises(BadProof):  # a single-leaf tree is its leaf; nothing else fits
        verify_inclusion(leaves[0], 0, 1, [leaves[1]], leaves[0])
    verify_inclusion(leaves[0], 0, 1, [], leaves[0])
