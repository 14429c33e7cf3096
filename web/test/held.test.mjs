// The contact page's check of a served log against the largest checkpoint it verified before
// (src/protocol/held.js), on the Certificate Transparency reference tree's leaves.
import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex, toHex } from "../src/protocol/bytes.js";
import { heldContradiction } from "../src/protocol/held.js";
import { PrefixRoots, leafHash } from "../src/protocol/merkle.js";

const INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
  "606162636465666768696a6b6c6d6e6f"];

async function rootsOf(inputs) {
  const roots = new PrefixRoots();
  for (const x of inputs) await roots.add(await leafHash(fromHex(x)));
  return roots;
}

test("a served log must extend the checkpoint the page holds", async () => {
  const log = await rootsOf(INPUTS);
  const held = { size: 5, root: toHex(log.rootAt(5)), seen_at: "2026-11-29T01:00:00Z" };
  const at = (n) => log.rootAt(n);
  assert.equal(heldContradiction(null, 8, at), null); // nothing held yet
  assert.equal(heldContradiction(held, 5, at), null); // the same log
  assert.equal(heldContradiction(held, 8, at), null); // grown: the first 5 entries unchanged

  const rolledBack = heldContradiction(held, 3, at);
  assert.match(rolledBack, /^EVIDENCE TAMPERING: the server's log was rolled back/);
  assert.match(rolledBack, /checkpoint of 5 entries on 2026-11-29T01:00:00Z, the server now serves 3; 2 entries are gone/);

  // the same first entries in another order (a rewritten, re-signed history), grown by one
  const forked = await rootsOf([INPUTS[1], INPUTS[0], ...INPUTS.slice(2)]);
  const found = heldContradiction(held, 8, (n) => forked.rootAt(n));
  assert.match(found, /^EVIDENCE TAMPERING: the server's log was forked: its first 5 entries/);
});
