// Safety numbers (docs/protocol.md §2.6; Python: crypto/safety.py): 60 digits two people
// compare out of band. Signal's numeric fingerprint without the stable identifier.

import { concat } from "./bytes.js";
import { sha512 } from "./hash.js";

const ITERATIONS = 5200;

export async function safetyDigits(key) {
  let digest = concat(Uint8Array.of(0, 0), key);
  for (let i = 0; i < ITERATIONS; i++) digest = await sha512(concat(digest, key));
  let out = "";
  for (let i = 0; i < 6; i++) {
    let value = 0n;
    for (const b of digest.subarray(i * 5, i * 5 + 5)) value = (value << 8n) | BigInt(b);
    out += (value % 100000n).toString().padStart(5, "0");
  }
  return out;
}

export async function safetyNumber(a, b) {
  const halves = [await safetyDigits(a), await safetyDigits(b)].sort();
  const digits = halves.join("");
  return digits.match(/.{5}/g).join(" ");
}
