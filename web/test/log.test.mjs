// Merkle log, checkpoints and descriptors, against the same vectors as tests/test_merkle.py
// (the Certificate Transparency reference tree) and docs/protocol.md §2.7.
import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex, toHex, utf8 } from "../src/protocol/bytes.js";
import { encounterOrigin, openCheckpoint } from "../src/protocol/checkpoint.js";
import { parseDescriptor } from "../src/protocol/descriptor.js";
import { PrefixRoots, leafHash, rootOf, verifyInclusion } from "../src/protocol/merkle.js";
import { splitNote } from "../src/protocol/signing.js";
import { example } from "./vectors.mjs";

const CT_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
  "606162636465666768696a6b6c6d6e6f"];
const CT_ROOTS = [
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
const CT_INCLUSION = [
  [0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]],
  [3, 8, ["0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]],
  [2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]],
  [1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]],
];
const SERVER = "safehold.example.org+c3198249+AcqJ9Syn7c8zBtG/3oEVZnrLKXYgX+atGIklDXGssfo0";
const ENCOUNTER = "3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b";

test("roots and inclusion proofs of the CT reference tree", async () => {
  const leaves = await Promise.all(CT_INPUTS.map((x) => leafHash(fromHex(x))));
  const prefixes = new PrefixRoots();
  for (let n = 1; n <= 8; n++) {
    assert.equal(toHex(await rootOf(leaves.slice(0, n))), CT_ROOTS[n - 1]);
    await prefixes.add(leaves[n - 1]);
    assert.equal(toHex(prefixes.rootAt(n)), CT_ROOTS[n - 1]);
  }
  // Beyond the reference tree: every prefix of 70 leaves agrees with the recursive definition.
  const more = new PrefixRoots();
  const hashes = [];
  for (let n = 1; n <= 70; n++) {
    hashes.push(await leafHash(utf8(`entry ${n}`)));
    await more.add(hashes[n - 1]);
    assert.equal(toHex(more.rootAt(n)), toHex(await rootOf(hashes)), `size ${n}`);
  }
  assert.throws(() => more.rootAt(71));
  assert.equal(toHex(await rootOf([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  for (const [index, size, hexes] of CT_INCLUSION) {
    const proof = hexes.map(fromHex);
    const root = fromHex(CT_ROOTS[size - 1]);
    assert.equal(await verifyInclusion(leaves[index], index, size, proof, root), true);
    // Every change is refused: another leaf, index or size, a flipped, dropped or extra hash.
    assert.equal(await verifyInclusion(leaves[(index + 1) % size], index, size, proof, root), false);
    if (size < 8) {  // another size with that size's real root (a proof binds size and root together)
      assert.equal(await verifyInclusion(leaves[index], index, size + 1, proof, fromHex(CT_ROOTS[size])), false);
    }
    assert.equal(await verifyInclusion(leaves[index], size, size, proof, root), false);
    for (let i = 0; i < proof.length; i++) {
      const flipped = proof.map((p, j) => (j === i ? Uint8Array.from(p, (b, k) => (k === 0 ? b ^ 1 : b)) : p));
      assert.equal(await verifyInclusion(leaves[index], index, size, flipped, root), false);
      assert.equal(await verifyInclusion(leaves[index], index, size, proof.filter((_, j) => j !== i), root), false);
    }
    assert.equal(await verifyInclusion(leaves[index], index, size, [...proof, leaves[0]], root), false);
  }
});

test("the worked checkpoint opens with the server key and origin of its encounter", async () => {
  const note = example("signed-checkpoint");
  const cp = await openCheckpoint(note, SERVER, encounterOrigin("safehold.example.org", ENCOUNTER));
  assert.equal(cp.size, 1);
  const descriptor = example("signed-descriptor");
  assert.equal(toHex(cp.root), toHex(await leafHash(utf8(descriptor))));
  assert.equal(toHex(cp.root), "b0f74ad3d2b191a82d51aaf1d70fd6a7653f9b7dc824ffd04c32654c109abcb4");
  await assert.rejects(openCheckpoint(note, SERVER,
    encounterOrigin("safehold.example.org", "00000000-0000-0000-0000-000000000000")), /another log/);
});

test("descriptors parse only in their one canonical encoding", () => {
  const text = splitNote(example("signed-descriptor")).text;
  assert.deepEqual(parseDescriptor(text), { encounter: ENCOUNTER, stream: "audio", seq: 7,
    final: false, size: 22, sha256: "f20dd1328cbb7c82413963e0e650ee50fa2493f6b69338884b4bbd603b17c008",
    time: "2026-11-28T03:30:01.123Z" });
  for (const [from, to] of [["seq 7", "seq 07"], ["seq 7", "seq +7"], ["end more", "end Final"],
    [".123Z", "Z"], [".123Z", ".123+00:00"], ["2026-11-28", "2026-02-30"], ["size 22", "size  22"],
    ["stream audio", "stream Audio"], ["f20dd", "F20DD"], ["\n", "\r\n"], [ENCOUNTER, ENCOUNTER.toUpperCase()],
    ["seq 7", "seq 4294967296"]]) {
    assert.throws(() => parseDescriptor(text.replace(from, to)), undefined, `${from} -> ${to}`);
  }
  assert.throws(() => parseDescriptor(text + "extra\n"));
});

test("zip members are stored with their CRC-32", async () => {
  const { crc32, storedZip } = await import("../src/protocol/zip.js");
  assert.equal(crc32(utf8("123456789")).toString(16), "cbf43926");
  const zip = storedZip([{ name: "b", bytes: utf8("two") }, { name: "a", bytes: utf8("one") }]);
  assert.equal(zip.length, 2 * (30 + 1 + 3) + 2 * (46 + 1) + 22);
  assert.deepEqual([...zip.subarray(30, 34)], [...utf8("aone")]); // sorted by name, stored as is
  assert.throws(() => storedZip([{ name: "a", bytes: utf8("") }, { name: "a", bytes: utf8("") }]));
});
