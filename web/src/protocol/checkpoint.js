// Checkpoints (c2sp.org/tlog-checkpoint; docs/protocol.md §2.5; Python: crypto/checkpoint.py).

import { fromB64 } from "./bytes.js";
import { openNote } from "./signing.js";

export const encounterOrigin = (serverName, encounterId) =>
  `${serverName}/safehold/encounter/${encounterId}`;

// Verify the note with the server key, check the origin; {size, root}.
export async function openCheckpoint(note, serverKey, origin) {
  const { text } = await openNote(note, [serverKey]);
  const lines = text.split("\n");
  if (lines.length < 4 || lines[0] !== origin) throw new Error("a checkpoint of another log");
  if (!/^(0|[1-9][0-9]{0,15})$/.test(lines[1])) throw new Error("bad checkpoint size");
  const root = fromB64(lines[2]);
  if (root.length !== 32) throw new Error("bad checkpoint root");
  return { size: Number(lines[1]), root };
}
