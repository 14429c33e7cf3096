// Contact invitations (docs/protocol.md "Trusted contacts"; Python: crypto/invitation.py):
// a code <id>.<secret> whose secret never reaches the server, and the two HMAC proofs.

import { fromB64url, toB64, toB64url, utf8, equalBytes, fromB64 } from "./bytes.js";
import { hkdfSha256, hmacSha256 } from "./hash.js";

const OWNER_PURPOSE = "safehold invite owner v1";
const CONTACT_PURPOSE = "safehold invite contact v1";
const POLICIES = ["immediate", "on_alert", "check_in"];

// "<22 chars>.<43 chars>" → {invitationId, secret}; whitespace around it is forgiven.
export function parseCode(text) {
  const [id, secret, ...rest] = String(text).trim().split(".");
  if (secret === undefined || rest.length) throw new Error("an invitation code is <id>.<secret>");
  const idBytes = fromB64url(id);
  const secretBytes = fromB64url(secret);
  if (idBytes.length !== 16 || secretBytes.length !== 32) {
    throw new Error("an invitation code is 22 characters, a dot and 43 characters");
  }
  return { invitationId: id, secret: secretBytes };
}

const lines = (...ls) => ls.map((l) => l + "\n").join("");

// The owner's terms as the server shows them (GET /v1/invitations/{id}); checked like
// crypto.invitation.OwnerTerms, device keys sorted and without repeats.
export function ownerTermsText(terms) {
  if (!POLICIES.includes(terms.policy)) throw new Error("unknown policy");
  const keys = [...new Set(terms.device_keys)].sort();
  const minutes = terms.check_in_minutes == null ? "-" : String(terms.check_in_minutes);
  return lines("safehold.invite-owner/v1", `invitation ${terms.invitation_id}`,
    `server ${terms.server}`, `account ${terms.account_id}`,
    `recipient ${terms.recovery_recipient}`, ...keys.map((k) => `device ${k}`),
    `policy ${terms.policy}`, `check_in ${minutes}`, `expires ${terms.expires_at}`);
}

export function ownerSafetyBytes(terms) {
  const keys = [...new Set(terms.device_keys)].sort();
  return utf8(lines("safehold.safety-owner/v1", terms.recovery_recipient, ...keys));
}

export function contactKeysText(invitationId, ageRecipient, contactKey) {
  return lines("safehold.invite-contact/v1", `invitation ${invitationId}`,
    `recipient ${ageRecipient}`, `key ${contactKey}`);
}

export function contactSafetyBytes(ageRecipient, contactKey) {
  return utf8(lines("safehold.safety-contact/v1", ageRecipient, contactKey));
}

async function mac(secret, purpose, text) {
  const key = await hkdfSha256(secret, new Uint8Array(0), utf8(purpose));
  return toB64(await hmacSha256(key, utf8(text)));
}

export const ownerProof = (secret, terms) => mac(secret, OWNER_PURPOSE, ownerTermsText(terms));

export const contactProof = (secret, invitationId, ageRecipient, contactKey) =>
  mac(secret, CONTACT_PURPOSE, contactKeysText(invitationId, ageRecipient, contactKey));

// Throws unless the server showed exactly the terms the owner's device committed to.
export async function verifyOwnerProof(secret, terms) {
  const expected = fromB64(await ownerProof(secret, terms));
  let given;
  try {
    given = fromB64(String(terms.owner_proof));
  } catch {
    given = new Uint8Array(0);
  }
  if (!equalBytes(expected, given)) {
    throw new Error("the owner proof does not match the invitation secret");
  }
}

// The owner's side: a fresh code (16-byte id, 32-byte secret), as crypto.invitation does.
export function newCode() {
  const id = toB64url(globalThis.crypto.getRandomValues(new Uint8Array(16)));
  const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
  return { invitationId: id, secret, text: `${id}.${toB64url(secret)}` };
}

// True only if the server reports the keys the invitee proved with the secret (step 4).
export async function contactProofMatches(secret, invitationId, ageRecipient, contactKey, proof) {
  let given;
  try {
    given = fromB64(String(proof));
  } catch {
    return false;
  }
  const expected = fromB64(await contactProof(secret, invitationId, ageRecipient, contactKey));
  return equalBytes(expected, given);
}
