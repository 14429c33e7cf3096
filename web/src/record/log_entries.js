// Event-log entries as the CLI writes them (docs/protocol.md C.3 step 4; Python:
// sync/upload/recorder.py): one JSON object per chunk of stream `log`, keys sorted, no spaces,
// non-ASCII escaped as \uXXXX (Python's json.dumps), one line ending in "\n".
// (To be replaced by the shared web/src/protocol/eventlog.js once it lands.)

import { formatTime } from "../protocol/descriptor.js";
import { utf8 } from "../protocol/bytes.js";

export function entryBytes(entry, at = new Date()) {
  const line = { at: formatTime(at), ...entry };
  const sorted = Object.fromEntries(Object.keys(line).sort().map((k) => [k, line[k]]));
  const text = JSON.stringify(sorted).replace(/[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return utf8(`${text}\n`);
}

export const startEntry = (stream) => ({ event: "start", stream, chunk_bytes: null, rate: null });
export const chunkEntry = (stream, seq, size, final) => ({ event: "chunk", stream, seq, size, final });
export const stopEntry = (stream, chunks, bytes) => ({ event: "stop", stream, chunks, bytes });
export const noteEntry = (text) => ({ event: "note", text });
export const locationEntry = (lat, lon, accuracy) => ({ event: "location", lat, lon, accuracy });
