import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex, utf8 } from "../src/protocol/bytes.js";
import {
  contactKeysText, contactProof, contactSafetyBytes, ownerProof, ownerSafetyBytes,
  ownerTermsText, parseCode, verifyOwnerProof,
} from "../src/protocol/invitation.js";
import { safetyNumber } from "../src/protocol/safety.js";
import { example, near } from "./vectors.mjs";

const CODE = "AAECAwQFBgcICQoLDA0ODw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

function termsFromDoc() {
  const lines = example("invite-owner-terms").trim().split("\n").slice(1);
  const field = (k) => lines.filter((l) => l.startsWith(k + " ")).map((l) => l.slice(k.length + 1));
  return {
    invitation_id: field("invitation")[0], server: field("server")[0],
    account_id: field("account")[0], recovery_recipient: field("recipient")[0],
    device_keys: field("device"), policy: field("policy")[0],
    check_in_minutes: Number(field("check_in")[0]), expires_at: field("expires")[0],
  };
}

test("the owner terms and contact keys texts are byte for byte the documented ones", () => {
  const terms = termsFromDoc();
  assert.equal(ownerTermsText(terms), example("invite-owner-terms"));
  const contact = example("invite-contact-keys").trim().split("\n");
  assert.equal(contactKeysText(terms.invitation_id, contact[2].slice(10), contact[3].slice(4)),
    example("invite-contact-keys"));
});

test("owner proof, contact proof and safety number match the worked example", async () => {
  const code = parseCode(`  ${CODE}\n`);
  assert.deepEqual(code.secret, Uint8Array.from({ length: 32 }, (_, i) => i));
  const terms = termsFromDoc();
  const expectedOwner = near("give owner proof", /give owner proof `([^`]+)`/);
  assert.equal(await ownerProof(code.secret, terms), expectedOwner);
  await verifyOwnerProof(code.secret, { ...terms, owner_proof: expectedOwner });
  const contact = example("invite-contact-keys").trim().split("\n");
  const [recipient, key] = [contact[2].slice(10), contact[3].slice(4)];
  assert.equal(await contactProof(code.secret, terms.invitation_id, recipient, key),
    near("give contact proof", /give contact proof `([^`]+)`/));
  assert.equal(await safetyNumber(ownerSafetyBytes(terms), contactSafetyBytes(recipient, key)),
    near("give contact proof", /the safety number\n`([0-9 ]+)`/));
});

test("a server that changed the owner's keys or terms is caught by the owner proof", async () => {
  const code = parseCode(CODE);
  const terms = termsFromDoc();
  const proof = await ownerProof(code.secret, terms);
  for (const changed of [{ policy: "immediate", check_in_minutes: null },
    { recovery_recipient: "age12ld5kdvlywh9u9rwfcj3ypt8q3ez2p353s2sc9r485xfx0gy6sss5uskuv" },
    { device_keys: [] }, { expires_at: "2026-12-06T03:30:00.000Z" }]) {
    await assert.rejects(verifyOwnerProof(code.secret, { ...terms, ...changed, owner_proof: proof }),
      /does not match/);
  }
  await assert.rejects(verifyOwnerProof(code.secret, { ...terms, owner_proof: "not base64!" }));
});

test("malformed codes are refused", () => {
  for (const bad of ["", "abc", CODE + ".x", CODE.replace(".", ""), CODE.slice(0, -1),
    "AAECAwQFBgcICQoLDA0ODw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    CODE.replace("AAEC", "AA+C")]) {
    assert.throws(() => parseCode(bad), undefined, bad);
  }
});

test("the safety number of the PeterNeumann and EnochRoot keys (§2.6)", async () => {
  const a = fromHex("1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6");
  const b = fromHex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29");
  const expected = "13418 50075 44811 77936 59954 26027 27954 31911 97129 45469 25443 14149";
  assert.equal(await safetyNumber(a, b), expected);
  assert.equal(await safetyNumber(b, a), expected);
  assert.notEqual(await safetyNumber(a, utf8("x")), expected);
});
