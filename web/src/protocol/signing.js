// Ed25519 keys in the C2SP signed-note key encoding, raw signatures and signed notes
// (docs/protocol.md §2.1, §2.2; Python: crypto/signing.py). Ed25519 through WebCrypto.

import { concat, fromB64, fromUtf8, toB64, toHex, utf8, equalBytes } from "./bytes.js";
import { sha256 } from "./hash.js";

const subtle = globalThis.crypto.subtle;
const PRIVATE_PREFIX = "PRIVATE+KEY+";
const SIGNATURE_PREFIX = "\u2014 ";
const MAX_SIGNATURES = 100;
// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b,
  0x65, 0x70, 0x04, 0x22, 0x04, 0x20);

export function isValidKeyName(name) {
  return typeof name === "string" && name.length > 0 && !/[\s\x00-\x1f\x7f+]/u.test(name);
}

export async function keyId(name, publicKey) {
  const digest = await sha256(concat(utf8(name), Uint8Array.of(0x0a, 0x01), publicKey));
  return digest.subarray(0, 4);
}

function splitKey(body, what) {
  const first = body.indexOf("+");
  const second = body.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new Error(`${what} must be <name>+<key id>+<key>`);
  const name = body.slice(0, first);
  const idHex = body.slice(first + 1, second);
  if (!isValidKeyName(name)) throw new Error(`${what} has an invalid key name`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error(`${what} key id must be 8 lowercase hex`);
  const material = fromB64(body.slice(second + 1));
  if (material.length !== 33 || material[0] !== 1) throw new Error(`${what} is not Ed25519`);
  return { name, idHex, key: material.subarray(1) };
}

// A verifier key string → {name, keyId (4 bytes), publicKey (32 bytes)}; checks the key id.
export async function parseVerifier(verifier) {
  if (typeof verifier !== "string") throw new Error("a verifier key is text");
  const { name, idHex, key } = splitKey(verifier, "verifier key");
  const kid = await keyId(name, key);
  if (toHex(kid) !== idHex) throw new Error("verifier key id does not match its name and key");
  return { name, keyId: kid, publicKey: key };
}

async function encodeKey(name, keyBytes, publicKey) {
  return `${name}+${toHex(await keyId(name, publicKey))}+${toB64(concat(Uint8Array.of(1), keyBytes))}`;
}

async function importSeed(seed) {
  return subtle.importKey("pkcs8", concat(PKCS8_PREFIX, seed), { name: "Ed25519" }, false, ["sign"]);
}

// A new signing key: {signingKey: "PRIVATE+KEY+…", verifierKey: "…"}.
export async function generateSigningKey(name) {
  if (!isValidKeyName(name)) throw new Error("invalid key name");
  const seed = globalThis.crypto.getRandomValues(new Uint8Array(32));
  return signingKeyFromSeed(name, seed);
}

export async function signingKeyFromSeed(name, seed) {
  const pair = await subtle.importKey("pkcs8", concat(PKCS8_PREFIX, seed), { name: "Ed25519" },
    true, ["sign"]);
  // WebCrypto derives the public key only through a JWK export of the private key.
  const jwk = await subtle.exportKey("jwk", pair);
  const publicKey = Uint8Array.from(atob(jwk.x.replaceAll("-", "+").replaceAll("_", "/")),
    (c) => c.charCodeAt(0));
  return {
    signingKey: PRIVATE_PREFIX + (await encodeKey(name, seed, publicKey)),
    verifierKey: await encodeKey(name, publicKey, publicKey),
  };
}

async function parseSigningKey(signingKey) {
  if (!signingKey.startsWith(PRIVATE_PREFIX)) throw new Error("signing key must start with PRIVATE+KEY+");
  const { name, idHex, key } = splitKey(signingKey.slice(PRIVATE_PREFIX.length), "signing key");
  return { name, idHex, seed: key };
}

export async function verifierKey(signingKey) {
  const { name, seed } = await parseSigningKey(signingKey);
  return (await signingKeyFromSeed(name, seed)).verifierKey;
}

export async function signRaw(message, signingKey) {
  const { seed } = await parseSigningKey(signingKey);
  return new Uint8Array(await subtle.sign("Ed25519", await importSeed(seed), message));
}

export async function verifyEd25519(publicKey, message, signature) {
  if (signature.length !== 64) return false;
  const key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return subtle.verify("Ed25519", key, signature, message);
}

export async function fingerprint(verifier) {
  return toHex(await sha256((await parseVerifier(verifier)).publicKey));
}

// Split a signed note into its text and (unverified) signature lines.
export function splitNote(note) {
  if (typeof note !== "string") throw new Error("a signed note is text");
  if (/[\x00-\x09\x0b-\x1f]/.test(note)) throw new Error("a signed note has a control character");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("not a signed note: no blank line before the signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith("\n")) throw new Error("a signed note ends with a signature line");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new Error("too many signatures");
  return {
    text,
    signatures: lines.map((line) => {
      if (!line.startsWith(SIGNATURE_PREFIX)) throw new Error("bad signature line");
      const rest = line.slice(SIGNATURE_PREFIX.length);
      const space = rest.lastIndexOf(" ");
      const name = rest.slice(0, space);
      if (space < 0 || !isValidKeyName(name)) throw new Error("bad signature line name");
      const blob = fromB64(rest.slice(space + 1));
      if (blob.length < 5) throw new Error("note signature is too short");
      return { name, keyId: blob.subarray(0, 4), signature: blob.subarray(4) };
    }),
  };
}

// Verify a note (§2.2): every signature by a trusted key must verify, at least one must be
// there. Returns {text, signers} (the verifier strings that signed); throws otherwise.
export async function openNote(note, verifiers) {
  const table = [];
  for (const v of verifiers) table.push({ verifier: v, ...(await parseVerifier(v)) });
  const { text, signatures } = splitNote(note);
  const message = utf8(text);
  const signers = [];
  for (const sig of signatures) {
    const known = table.find((k) => k.name === sig.name && equalBytes(k.keyId, sig.keyId));
    if (!known) continue;
    if (!(await verifyEd25519(known.publicKey, message, sig.signature))) {
      throw new Error(`invalid signature by ${sig.name}`);
    }
    if (!signers.includes(known.verifier)) signers.push(known.verifier);
  }
  if (!signers.length) throw new Error("the note carries no signature by a trusted key");
  return { text, signers };
}

export function noteBytesText(bytes) {
  return fromUtf8(bytes);
}

// A device key kept as a non-extractable WebCrypto key (the page can sign, nobody can read the
// seed out of the browser): {privateKey (CryptoKey), verifierKey (text)}.
export async function generateDeviceKey(name) {
  if (!isValidKeyName(name)) throw new Error("invalid key name");
  const pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const publicKey = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, verifierKey: await encodeKey(name, publicKey, publicKey) };
}

// A signer over a CryptoKey: {name, keyId, sign(bytes) -> 64-byte signature}.
export async function cryptoKeySigner(privateKey, verifier) {
  const { name, keyId: kid } = await parseVerifier(verifier);
  return {
    name, keyId: kid, verifier,
    sign: async (message) => new Uint8Array(await subtle.sign("Ed25519", privateKey, message)),
  };
}

// A signed note (§2.2) with one signature line by `signer`.
export async function signNote(text, signer) {
  if (!text.endsWith("\n") || text.includes("\n\n")) throw new Error("note text must be lines");
  const signature = await signer.sign(utf8(text));
  return `${text}\n${SIGNATURE_PREFIX}${signer.name} ${toB64(concat(signer.keyId, signature))}\n`;
}
