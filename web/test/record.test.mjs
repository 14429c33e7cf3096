import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import { Decrypter, generateIdentity, identityToRecipient } from "age-encryption";
import { concat, fromHex, fromUtf8, toB64, utf8 } from "../src/protocol/bytes.js";
import { readSlot, sealChunk } from "../src/protocol/agefile.js";
import { descriptorText, parseDescriptor } from "../src/protocol/descriptor.js";
import { sha256 } from "../src/protocol/hash.js";
import { leafHash, previousRoot, rootOf, verifyConsistency, verifyInclusion } from "../src/protocol/merkle.js";
import { UntrustedReceipt, linkCheckpoint } from "../src/protocol/receipt.js";
import { cryptoKeySigner, signNote } from "../src/protocol/signing.js";
import { rosterGenesisText } from "../src/protocol/statements.js";
import { example, near } from "./vectors.mjs";

const DEVICE = "device-7d4f1c2a-93b0-4e8e-a6c5-1f2e3d4c5b6a+cb293dab+AejjIrys6W/YJ4UZttfOOYAoxS6NR9jtkfnX6yM7aSpf";
const PKCS8 = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
  0x04, 0x22, 0x04, 0x20);
const ENCOUNTER = "3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b";

// The example device key, held as the page holds its key: a non-extractable CryptoKey.
async function exampleSigner() {
  const seed = await sha256(utf8("safehold example device key"));
  const key = await crypto.subtle.importKey("pkcs8", concat(PKCS8, seed), { name: "Ed25519" }, false, ["sign"]);
  return cryptoKeySigner(key, DEVICE);
}

test("the signed descriptor of §2.7, byte for byte, from a non-extractable key", async () => {
  const text = descriptorText({ encounter: ENCOUNTER, stream: "audio", seq: 7, final: false, size: 22,
    sha256: (await sha256(utf8("example age file bytes"))).reduce((s, b) => s + b.toString(16).padStart(2, "0"), ""),
    time: "2026-11-28T03:30:01.123Z" });
  assert.equal(await signNote(text, await exampleSigner()), example("signed-descriptor"));
  assert.throws(() => descriptorText({ encounter: ENCOUNTER.toUpperCase(), stream: "audio", seq: 7,
    final: false, size: 22, sha256: "00".repeat(32), time: "2026-11-28T03:30:01.123Z" }));
});

test("the roster genesis of the protocol document, byte for byte", async () => {
  const recovery = "age1zwlyl6h27gzv0lfntr7fcqrjrzqazap8sy5zylkxwneh7llf0dksu37mwt";
  const text = rosterGenesisText("safehold.example.org", ENCOUNTER, DEVICE, recovery);
  const note = await signNote(text, await exampleSigner());
  assert.equal(note, example("roster-genesis"));
  const hash = near("Its hash (what statement 1 names", /`([0-9a-f]{64})`/);
  assert.equal(Buffer.from(await sha256(utf8(note))).toString("hex"), hash);
});

test("a sealed chunk: slot stanza first with an empty body, opens for every recipient", async () => {
  const ids = [await generateIdentity(), await generateIdentity()];
  const recipients = await Promise.all(ids.map((i) => identityToRecipient(i)));
  const slot = { encounter: ENCOUNTER, stream: "audio", seq: 4294967295, final: true };
  const media = utf8("a second of webm");
  const bytes = await sealChunk(media, slot, recipients);
  const lines = fromUtf8(bytes.subarray(0, 200)).split("\n");
  assert.equal(lines[0], "age-encryption.org/v1");
  assert.equal(lines[1], `-> safehold-slot ${ENCOUNTER} audio 4294967295 final`);
  assert.equal(lines[2], "");
  assert.match(lines[3], /^-> X25519 [A-Za-z0-9+/]{43}$/);
  assert.deepEqual(readSlot(bytes), slot);
  for (const identity of ids) {
    const d = new Decrypter();
    d.addIdentity(identity);
    assert.deepEqual(await d.decrypt(bytes), media);
  }
  // An empty final chunk (a live stream's end) is a valid age file too.
  const empty = await sealChunk(new Uint8Array(0), { ...slot, seq: 0 }, recipients);
  assert.equal(readSlot(empty).seq, 0);
  await assert.rejects(sealChunk(media, { ...slot, stream: "Audio" }, recipients), /invalid chunk slot/);
  await assert.rejects(sealChunk(media, { ...slot, seq: 4294967296 }, recipients), /invalid chunk slot/);
  await assert.rejects(sealChunk(media, slot, []), /at least one recipient/);
});

// The Certificate Transparency reference tree and its consistency proofs (tests/test_merkle.py).
const CT = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
  "606162636465666768696a6b6c6d6e6f"].map(fromHex);
const CT_CONSISTENCY = {
  "1,8": ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
  "6,8": ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
  "2,5": ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
};

test("consistency proofs of the CT reference tree verify, altered ones do not", async () => {
  const hashes = await Promise.all(CT.map((l) => leafHash(l)));
  const root = (n) => rootOf(hashes.slice(0, n));
  for (const [sizes, hex] of Object.entries(CT_CONSISTENCY)) {
    const [m, n] = sizes.split(",").map(Number);
    const proof = hex.map(fromHex);
    assert.ok(await verifyConsistency(m, n, proof, await root(m), await root(n)), sizes);
    const bad = proof.map((p, i) => (i === 0 ? Uint8Array.from(p, (b, j) => (j ? b : b ^ 1)) : p));
    assert.equal(await verifyConsistency(m, n, bad, await root(m), await root(n)), false);
    assert.equal(await verifyConsistency(m, n, proof, await root(m - 1 || 2), await root(n)), false);
    assert.equal(await verifyConsistency(m, n, proof.slice(1), await root(m), await root(n)), false);
  }
  assert.ok(await verifyConsistency(3, 3, [], await root(3), await root(3)));
  assert.equal(await verifyConsistency(3, 3, [], await root(3), await root(4)), false);
});

// RFC 9162 inclusion path of the newest leaf, built from the definition.
async function newestPath(hashes) {
  const path = [];
  let n = hashes.length;
  let start = 0;
  while (n > 1) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    path.unshift(await rootOf(hashes.slice(start, start + k)));
    start += k;
    n -= k;
  }
  return path;
}

test("the newest leaf's inclusion path proves the previous root, and receipts link or fork", async () => {
  const hashes = await Promise.all(CT.map((l) => leafHash(l)));
  for (let size = 2; size <= 8; size++) {
    const path = await newestPath(hashes.slice(0, size));
    assert.ok(await verifyInclusion(hashes[size - 1], size - 1, size, path, await rootOf(hashes.slice(0, size))));
    assert.deepEqual(await previousRoot(size - 1, size, path), await rootOf(hashes.slice(0, size - 1)));
  }
  const opened = async (size) => ({ size, root: await rootOf(hashes.slice(0, size)), leafIndex: size - 1,
    proof: await newestPath(hashes.slice(0, size)) });
  const noProof = async () => assert.fail("no consistency request needed");
  let known = await linkCheckpoint([], await opened(1), noProof);
  for (let size = 2; size <= 5; size++) known = await linkCheckpoint(known, await opened(size), noProof);
  assert.deepEqual(known.map((k) => k.size), [1, 2, 3, 4, 5]);
  const asked = [];
  known = await linkCheckpoint(known, { ...(await opened(8)), leafIndex: 0 }, async (m, n) => {
    asked.push([m, n]);
    return proofFor(hashes, m, n);
  });
  assert.deepEqual(asked, [[5, 8]]);
  // Another root for a size already verified is a fork.
  const forged = { size: 4, root: new Uint8Array(32), leafIndex: 0, proof: [] };
  await assert.rejects(linkCheckpoint(known, forged, noProof), UntrustedReceipt);
  const other = await Promise.all(CT.map((l, i) => leafHash(i === 6 ? utf8("x") : l)));
  const forkedNext = { size: 8, root: await rootOf(other), leafIndex: 7, proof: await newestPath(other) };
  await assert.rejects(linkCheckpoint(known.filter((k) => k.size < 8), forkedNext,
    (m, n) => proofFor(hashes, m, n)), UntrustedReceipt);
});

// SUBPROOF of RFC 9162 §2.1.4.1, literally.
async function proofFor(hashes, m, n) {
  async function sub(m2, leaves, complete) {
    const count = leaves.length;
    if (m2 === count) return complete ? [] : [await rootOf(leaves)];
    let k = 1;
    while (k * 2 < count) k *= 2;
    if (m2 <= k) return [...(await sub(m2, leaves.slice(0, k), complete)), await rootOf(leaves.slice(k))];
    return [...(await sub(m2 - k, leaves.slice(k), false)), await rootOf(leaves.slice(0, k))];
  }
  return (await sub(m, hashes.slice(0, n), true)).map(toB64);
}

test("a log chunk's descriptor may be the final one", () => {
  const at = new Date("2026-11-28T03:30:01.123Z");
  assert.equal(parseDescriptor(descriptorText({ encounter: ENCOUNTER, stream: "log", seq: 0, final: true,
    size: 1, sha256: "ab".repeat(32), time: at.toISOString() })).final, true);
});
