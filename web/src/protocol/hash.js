// SHA-256/512, HMAC and HKDF through WebCrypto (browsers in a secure context, node >= 20).

import { concat } from "./bytes.js";

const subtle = globalThis.crypto.subtle;

export async function sha256(data) {
  return new Uint8Array(await subtle.digest("SHA-256", data));
}

export async function sha512(data) {
  return new Uint8Array(await subtle.digest("SHA-512", data));
}

export async function hmacSha256(key, message) {
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, message));
}

// RFC 5869 HKDF-SHA-256 with a 32-byte output; an empty salt means 32 zero bytes.
export async function hkdfSha256(ikm, salt, info) {
  const k = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, k, 256);
  return new Uint8Array(bits);
}

// RFC 6962 leaf and node hashes.
export function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}
