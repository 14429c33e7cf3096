// The largest checkpoint this browser verified for an encounter (kept in IndexedDB by the
// contact page) against the log the server serves now: the page's copy of what
// sync/people/known_checkpoints.py keeps for the CLI. A smaller log is a rollback (a database
// backup restored); a log whose first `held.size` entries do not hash to the held root is a
// fork (a rewritten history). Either is evidence tampering, shown as such, never as "cut off".

import { toHex } from "./bytes.js";

// held: {size, root (hex), seen_at}; size: the served log's; rootAt(n): its root of n entries.
// Returns a sentence naming what happened, or null when the served log extends the held one.
export function heldContradiction(held, size, rootAt) {
  if (!held || !held.size) return null;
  const when = held.seen_at ? ` on ${held.seen_at}` : "";
  if (size < held.size) {
    return `EVIDENCE TAMPERING: the server's log was rolled back: this browser verified its ` +
      `signed checkpoint of ${held.size} entries${when}, the server now serves ${size}; ` +
      `${held.size - size} entries are gone`;
  }
  if (toHex(rootAt(held.size)) !== held.root) {
    return `EVIDENCE TAMPERING: the server's log was forked: its first ${held.size} entries ` +
      `are not the ones this browser verified${when} (the server now serves ${size})`;
  }
  return null;
}
