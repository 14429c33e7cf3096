// Verifying an upload receipt (docs/protocol.md C.6; Python: sync/upload/receipts.py): it names
// the chunk sent, its checkpoint is signed by the pinned server key for this encounter's log,
// the descriptor is included under that root, and the checkpoint is consistent with every
// checkpoint verified before for the encounter.

import { fromB64, utf8, equalBytes } from "./bytes.js";
import { encounterOrigin, openCheckpoint } from "./checkpoint.js";
import { leafHash, previousRoot, verifyConsistency, verifyInclusion } from "./merkle.js";

export class UntrustedReceipt extends Error {}

// Checks 1-3. Returns {size, root, leafIndex, proof}.
export async function openReceipt(receipt, chunk, server) {
  if (receipt.encounter_id !== chunk.encounter || receipt.stream !== chunk.stream ||
      receipt.seq !== chunk.seq) {
    throw new UntrustedReceipt("the receipt names another chunk");
  }
  let cp;
  try {
    cp = await openCheckpoint(receipt.checkpoint, server.key, encounterOrigin(server.name, chunk.encounter));
  } catch (exc) {
    throw new UntrustedReceipt(`the receipt's checkpoint does not verify: ${exc.message}`);
  }
  const index = receipt.leaf_index;
  if (cp.size !== receipt.tree_size || !Number.isInteger(index) || index < 0 || index >= cp.size) {
    throw new UntrustedReceipt("the receipt's leaf index or tree size is impossible");
  }
  const proof = (receipt.inclusion_proof || []).map((h) => fromB64(h));
  if (!(await verifyInclusion(await leafHash(utf8(chunk.note)), index, cp.size, proof, cp.root))) {
    throw new UntrustedReceipt("the chunk's descriptor is not in the signed log");
  }
  return { size: cp.size, root: cp.root, leafIndex: index, proof };
}

// Check 4: `known` is a list of verified {size, root} (ascending); `consistency(m, n)` fetches
// a proof. Returns the list with the new pair added; throws on a fork.
export async function linkCheckpoint(known, opened, consistency) {
  const same = known.find((k) => k.size === opened.size);
  if (same) {
    if (!equalBytes(same.root, opened.root)) throw new UntrustedReceipt("two roots for one log size: the log forked");
    return known;
  }
  const prev = await previousRoot(opened.leafIndex, opened.size, opened.proof);
  const pairs = prev ? [{ size: opened.size - 1, root: prev }] : [];
  for (const p of pairs) {
    const k = known.find((x) => x.size === p.size);
    if (k && !equalBytes(k.root, p.root)) throw new UntrustedReceipt("the log forked");
  }
  const largest = known.length ? known[known.length - 1] : null;
  if (largest && !(prev && largest.size === opened.size - 1)) {
    const [a, b] = largest.size < opened.size ? [largest, opened] : [opened, largest];
    const proof = (await consistency(a.size, b.size)).map((h) => fromB64(h));
    if (!(await verifyConsistency(a.size, b.size, proof, a.root, b.root))) {
      throw new UntrustedReceipt("the log is not consistent with a checkpoint verified before");
    }
  }
  return [...known, ...pairs, { size: opened.size, root: opened.root }]
    .filter((v, i, all) => all.findIndex((w) => w.size === v.size) === i)
    .sort((a, b) => a.size - b.size);
}
