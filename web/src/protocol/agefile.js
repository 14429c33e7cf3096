// The age side of Safehold in the browser, over the official age-encryption package:
// new X25519 identities, passphrase-protected identity files (as `safehold keygen --passphrase`
// and `age -p -a` write them, §1.4), chunk decryption and the safehold-slot stanza (§1.5).

import { Decrypter, Encrypter, Stanza, armor, generateIdentity, identityToRecipient } from "age-encryption";
import { fromUtf8, utf8 } from "./bytes.js";

export const SCRYPT_WORK_FACTOR = 18; // what safehold keygen writes
const SLOT = /^-> safehold-slot ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) ([a-z][a-z0-9_-]{0,31}) (0|[1-9][0-9]{0,9}) (more|final)$/;

export async function newIdentity() {
  const identity = await generateIdentity();
  return { identity, recipient: await identityToRecipient(identity) };
}

export function identityFileText(identity, recipient, created = new Date()) {
  const stamp = created.toISOString().replace(/\.\d{3}Z$/, "Z");
  return `# created: ${stamp}\n# public key: ${recipient}\n${identity}\n`;
}

// Only the AGE-SECRET-KEY-1… lines of an identity file (blank and # lines skipped).
export function identitiesIn(text) {
  const keys = [];
  for (const line of text.split("\n").map((l) => l.trim())) {
    if (!line || line.startsWith("#")) continue;
    if (!line.startsWith("AGE-SECRET-KEY-1")) throw new Error("not an age identity file");
    keys.push(line);
  }
  if (!keys.length) throw new Error("the identity file holds no identity");
  return keys;
}

// Armored age file encrypted to a passphrase alone (one scrypt stanza).
export async function sealWithPassphrase(text, passphrase, workFactor = SCRYPT_WORK_FACTOR) {
  const e = new Encrypter();
  e.setPassphrase(passphrase);
  e.setScryptWorkFactor(workFactor);
  return armor.encode(await e.encrypt(utf8(text)));
}

export async function openWithPassphrase(armored, passphrase) {
  const d = new Decrypter();
  d.addPassphrase(passphrase);
  const bytes = armored.startsWith("age-encryption.org/") ? utf8(armored) : armor.decode(armored);
  return fromUtf8(await d.decrypt(bytes));
}

// The header's safehold-slot stanza, read without a key (§1.5): exactly one, empty body.
export function readSlot(bytes) {
  const end = headerEnd(bytes);
  const lines = fromUtf8(bytes.subarray(0, end)).split("\n");
  if (lines[0] !== "age-encryption.org/v1") throw new Error("not an age v1 file");
  const slots = [];
  for (let i = 1; i < lines.length; i++) {
    if (!lines[i].startsWith("-> safehold-slot")) continue;
    const m = SLOT.exec(lines[i]);
    if (!m || Number(m[3]) > 0xffffffff || lines[i + 1] !== "") {
      throw new Error("malformed safehold-slot stanza");
    }
    slots.push({ encounter: m[1], stream: m[2], seq: Number(m[3]), final: m[4] === "final" });
  }
  if (slots.length !== 1) throw new Error(slots.length ? "two safehold-slot stanzas" : "no safehold-slot stanza");
  return slots[0];
}

function headerEnd(bytes) {
  const limit = Math.min(bytes.length, 1 << 20);
  for (let i = 0; i + 4 <= limit; i++) {
    // "\n---" starts the MAC line
    if (bytes[i] === 10 && bytes[i + 1] === 45 && bytes[i + 2] === 45 && bytes[i + 3] === 45) {
      return i + 1;
    }
  }
  throw new Error("no age header MAC line");
}

// Decrypts one chunk; the age header MAC binds the slot stanza read above to the file key.
export async function decryptChunk(bytes, identities) {
  const d = new Decrypter();
  for (const identity of identities) d.addIdentity(identity);
  return d.decrypt(bytes);
}

// Plaintext length from the age framing (§4.5): header, 16-byte nonce, 16-byte tag per 64 KiB.
export function plaintextSize(bytes) {
  const macLine = headerEnd(bytes);
  let at = macLine;
  while (at < bytes.length && bytes[at] !== 10) at++;
  const payload = bytes.length - (at + 1) - 16;
  const chunks = Math.max(1, Math.ceil(payload / 65552));
  return payload - 16 * chunks;
}

// A recipient that writes no key, only the slot stanza (§1.5): added first, so the encoder puts
// it right after the version line, as crypto/age does; its empty body is one empty line.
class SlotStanza {
  constructor(slot) {
    this.args = ["safehold-slot", slot.encounter, slot.stream, String(slot.seq),
      slot.final ? "final" : "more"];
    if (!SLOT.test(`-> ${this.args.join(" ")}`) || slot.seq > 0xffffffff) {
      throw new Error("invalid chunk slot");
    }
  }

  wrapFileKey() {
    return [new Stanza(this.args, new Uint8Array(0))];
  }
}

// One chunk (§1.2-1.3): the slot stanza, then one X25519 stanza per recipient in the order
// given (pinned contacts in pinning order, then the recovery recipient, as the CLI writes).
export async function sealChunk(plaintext, slot, recipients) {
  if (!recipients.length) throw new Error("a chunk needs at least one recipient");
  const e = new Encrypter();
  e.addRecipient(new SlotStanza(slot));
  for (const r of recipients) e.addRecipient(r);
  return e.encrypt(plaintext);
}
