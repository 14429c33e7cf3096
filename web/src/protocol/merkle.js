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
