// Seal, sign, commit (docs/protocol.md C.3 steps 2-3): each piece is sealed to every pinned
// contact and the recovery recipient with its slot stanza, its descriptor signed by the device
// key, and the age file and signed descriptor committed to the IndexedDB outbox in one
// transaction before the uploader may see it. A chunk is never sealed again.

import { sealChunk } from "../protocol/agefile.js";
import { toHex } from "../protocol/bytes.js";
import { descriptorText, formatTime } from "../protocol/descriptor.js";
import { sha256 } from "../protocol/hash.js";
import { signNote } from "../protocol/signing.js";
import { run } from "./store.js";

export const PRIORITY = { log: 0, addenda: 0, audio: 1, video: 2 };

export const chunkKey = (encounter, stream, seq) =>
  `${encounter}/${stream}/${String(seq).padStart(10, "0")}`;

export async function sealPiece(plaintext, slot, recipients, signer, now = new Date()) {
  const bytes = await sealChunk(plaintext, slot, recipients);
  const text = descriptorText({ ...slot, size: bytes.length, sha256: toHex(await sha256(bytes)),
    time: formatTime(now) });
  return { key: chunkKey(slot.encounter, slot.stream, slot.seq), ...slot, bytes,
    note: await signNote(text, signer), plainSize: plaintext.length, state: "queued",
    priority: PRIORITY[slot.stream] ?? 3, sealedAt: formatTime(now) };
}

export async function commit(chunk) {
  await run("chunks", "readwrite", (s) => { s.chunks.add(chunk); });
  return chunk;
}
