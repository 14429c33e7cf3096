// RFC 6962 tree hashes and RFC 9162 inclusion proofs (docs/protocol.md §2.4;
// Python: crypto/merkle.py). Hashes are Uint8Array(32).

import { equalBytes } from "./bytes.js";
import { leafHash, nodeHash, sha256 } from "./hash.js";

export { leafHash };

function largestPowerOfTwoBelow(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// MTH over already-hashed leaves.
export async function rootOf(hashes) {
  if (hashes.length === 0) return sha256(new Uint8Array(0));
  if (hashes.length === 1) return hashes[0];
  const k = largestPowerOfTwoBelow(hashes.length);
  return nodeHash(await rootOf(hashes.slice(0, k)), await rootOf(hashes.slice(k)));
}

// RFC 9162 §2.1.3.2.
export async function verifyInclusion(leaf, index, size, proof, root) {
  if (!(index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32 || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}

// The roots of every prefix of a growing log, O(log n) hashes per leaf (verify_log.py's job for
// the page): the RFC 6962 root of n leaves folds the perfect subtrees of n's binary
// decomposition ("peaks") from the right.
export class PrefixRoots {
  constructor() {
    this.peaks = []; // [{size, hash}], largest first
    this.roots = [null]; // roots[n] = hex root of the first n leaves (n >= 1)
  }

  // A copy to grow, so a log that fails its checkpoint leaves this one as it was.
  copy() {
    const other = new PrefixRoots();
    other.peaks = [...this.peaks];
    other.roots = [...this.roots];
    return other;
  }

  get size() {
    return this.roots.length - 1;
  }

  async add(hash) {
    this.peaks.push({ size: 1, hash });
    while (this.peaks.length > 1 &&
        this.peaks[this.peaks.length - 1].size === this.peaks[this.peaks.length - 2].size) {
      const right = this.peaks.pop();
      const left = this.peaks.pop();
      this.peaks.push({ size: left.size * 2, hash: await nodeHash(left.hash, right.hash) });
    }
    let root = this.peaks[this.peaks.length - 1].hash;
    for (let i = this.peaks.length - 2; i >= 0; i--) root = await nodeHash(this.peaks[i].hash, root);
    this.roots.push(root);
  }

  rootAt(n) {
    if (!(n >= 1 && n <= this.size)) throw new Error(`no root for size ${n}`);
    return this.roots[n];
  }
}

// RFC 9162 §2.1.4.2: is the tree of size `first` with root `firstRoot` a prefix of the tree of
// size `second` with root `secondRoot`? (The recorder links its receipts with it, C.6.)
export async function verifyConsistency(first, second, proof, firstRoot, secondRoot) {
  if (!(first >= 1 && first <= second)) return false;
  if (first === second) return proof.length === 0 && equalBytes(firstRoot, secondRoot);
  if (!proof.length || proof.some((p) => p.length !== 32)) return false;
  const path = (first & (first - 1)) === 0 ? [firstRoot, ...proof] : proof;
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(fr, firstRoot) && equalBytes(sr, secondRoot);
}

// A receipt for the newest leaf (index = size - 1) also proves the root at size - 1 (C.6 4):
// fold its inclusion path, lowest first. Null when the leaf is not the newest or size is 1.
export async function previousRoot(index, size, proof) {
  if (index !== size - 1 || size < 2 || !proof.length) return null;
  let r = proof[0];
  for (const p of proof.slice(1)) r = await nodeHash(p, r);
  return r;
}
