import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex, toHex, utf8 } from "../src/protocol/bytes.js";
import { sha256 } from "../src/protocol/hash.js";
import {
  keyId, openNote, parseVerifier, signRaw, signingKeyFromSeed, verifierKey, verifyEd25519,
} from "../src/protocol/signing.js";
import { example } from "./vectors.mjs";

const DEVICE_SIGNING = "PRIVATE+KEY+device-7d4f1c2a-93b0-4e8e-a6c5-1f2e3d4c5b6a+cb293dab+ARBR03fkKij/qQfMQnJSpYnldx90F4WziHa6H/c7UBf0";
const DEVICE = "device-7d4f1c2a-93b0-4e8e-a6c5-1f2e3d4c5b6a+cb293dab+AejjIrys6W/YJ4UZttfOOYAoxS6NR9jtkfnX6yM7aSpf";
const SERVER = "safehold.example.org+c3198249+AcqJ9Syn7c8zBtG/3oEVZnrLKXYgX+atGIklDXGssfo0";

test("key ids and the example device key (§2.7)", async () => {
  const pub = fromHex("1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6");
  assert.equal(toHex(await keyId("PeterNeumann", pub)), "c74f20a3");
  await parseVerifier("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  await assert.rejects(parseVerifier("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"));
  await assert.rejects(parseVerifier("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"));
  const seed = await sha256(utf8("safehold example device key"));
  const made = await signingKeyFromSeed("device-7d4f1c2a-93b0-4e8e-a6c5-1f2e3d4c5b6a", seed);
  assert.equal(made.signingKey, DEVICE_SIGNING);
  assert.equal(made.verifierKey, DEVICE);
  assert.equal(await verifierKey(DEVICE_SIGNING), DEVICE);
});

test("raw signatures verify and fail on any change", async () => {
  const message = utf8("safehold-login/v1\nhost\ncontact-login\nid\nchallenge\n");
  const signature = await signRaw(message, DEVICE_SIGNING);
  const { publicKey } = await parseVerifier(DEVICE);
  assert.equal(await verifyEd25519(publicKey, message, signature), true);
  signature[5] ^= 1;
  assert.equal(await verifyEd25519(publicKey, message, signature), false);
});

test("the signed descriptor and checkpoint examples open with their keys only", async () => {
  const descriptor = example("signed-descriptor");
  const { text, signers } = await openNote(descriptor, [DEVICE]);
  assert.ok(text.startsWith("safehold.chunk/v1\n") && text.endsWith(".123Z\n"));
  assert.deepEqual(signers, [DEVICE]);
  await assert.rejects(openNote(descriptor, [SERVER]), /no signature by a trusted key/);
  await assert.rejects(openNote(descriptor.replace("seq 7", "seq 8"), [DEVICE]), /invalid signature/);
  const checkpoint = example("signed-checkpoint");
  assert.equal((await openNote(checkpoint, [SERVER])).text.split("\n")[1], "1");
  await assert.rejects(openNote(checkpoint.replace("\n1\n", "\n2\n"), [SERVER]));
  await assert.rejects(openNote(checkpoint.replace("\u2014", "-"), [SERVER]));
});
