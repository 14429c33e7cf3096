// The age side, against docs/protocol.md §1.5 (slot lines) and §1.10 (the worked chunk).
import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";
import { armor } from "age-encryption";

import {
  decryptChunk, identitiesIn, identityFileText, newIdentity, openWithPassphrase, plaintextSize,
  readSlot, sealWithPassphrase,
} from "../src/protocol/agefile.js";
import { fromUtf8, utf8 } from "../src/protocol/bytes.js";
import { example } from "./vectors.mjs";

const chunk = () => armor.decode(example("age-chunk-armored"));
const identity = () => example("age-chunk-keys").split("\n")[0].split(/\s+/)[1];

test("the worked chunk decrypts with the example identity and names its slot", async () => {
  const bytes = chunk();
  assert.equal(bytes.length, 291);
  assert.deepEqual(readSlot(bytes), { encounter: "3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b",
    stream: "audio", seq: 7, final: false });
  assert.equal(fromUtf8(await decryptChunk(bytes, [identity()])), "safehold example chunk\n");
  assert.equal(plaintextSize(bytes), 23);
  const altered = bytes.slice();
  altered[altered.length - 1] ^= 1;
  await assert.rejects(decryptChunk(altered, [identity()]));
  const { identity: other } = await newIdentity();
  await assert.rejects(decryptChunk(bytes, [other]));
});

test("slot lines are accepted and refused as §1.5 lists them", () => {
  const header = (line) => utf8(`age-encryption.org/v1\n${line}\n\n-> X25519 abc\n\n--- mac\n`);
  const lines = example("slot-lines").trim().split("\n");
  assert.ok(lines.length > 10);
  for (const entry of lines) {
    const [verdict, ...rest] = entry.split(" ");
    const line = rest.join(" ");
    if (verdict === "accept") assert.doesNotThrow(() => readSlot(header(line)), line);
    else assert.throws(() => readSlot(header(line)), undefined, line);
  }
  const good = lines.find((l) => l.startsWith("accept ")).slice(7);
  assert.throws(() => readSlot(header(`${good}\n\n${good}`)), /two/);
  assert.throws(() => readSlot(utf8(`age-encryption.org/v1\n${good}\nAAAA\n--- mac\n`)));
});

test("a passphrase-protected identity file is one scrypt stanza, armored, and reopens", async () => {
  const { identity: id, recipient } = await newIdentity();
  const text = identityFileText(id, recipient, new Date("2026-11-28T03:30:01.123Z"));
  assert.match(text, /^# created: 2026-11-28T03:30:01Z\n# public key: age1[0-9a-z]{58}\nAGE-SECRET-KEY-1[0-9A-Z]{58}\n$/);
  const sealed = await sealWithPassphrase(text, "pass phrase", 10);
  const header = Buffer.from(armor.decode(sealed)).toString("latin1").split("\n");
  assert.match(header[1], /^-> scrypt [A-Za-z0-9+/]{22} 10$/);
  assert.ok(header[3].startsWith("--- "));
  assert.equal(await openWithPassphrase(sealed, "pass phrase"), text);
  await assert.rejects(openWithPassphrase(sealed, "wrong"));
  assert.deepEqual(identitiesIn(text), [id]);
  assert.throws(() => identitiesIn("# nothing\n"));
});
