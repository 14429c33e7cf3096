// Byte and text encodings used across the protocol (docs/protocol.md "Conventions").
// Pure functions; no I/O.

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

export function utf8(text) {
  return encoder.encode(text);
}

export function fromUtf8(bytes) {
  return strictDecoder.decode(bytes);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not lowercase hex");
  return Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
}

export function toB64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

// Standard padded base64; refuses non-canonical encodings like the Python side does.
export function fromB64(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    throw new Error("not base64");
  }
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  if (toB64(bytes) !== text) throw new Error("not canonical base64");
  return bytes;
}

export function toB64url(bytes) {
  return toB64(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function fromB64url(text) {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new Error("not base64url");
  const std = text.replaceAll("-", "+").replaceAll("_", "/");
  const bytes = Uint8Array.from(atob(std + "=".repeat((4 - (std.length % 4)) % 4)),
    (c) => c.charCodeAt(0));
  if (toB64url(bytes) !== text) throw new Error("not canonical base64url");
  return bytes;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
