// Entries of an encounter's event log (docs/protocol.md C.3 step 4, "The event log"): each one is
// a JSON object on one line, sealed as its own chunk of stream `log`. The recorder writes
// `start`, `chunk` and `stop`; the person adds `note` (typed text) and `location` (coordinates
// with their accuracy in metres, or null). The bytes match the Python writer
// (sync/upload/eventlog.py): keys sorted, no spaces, every non-ASCII character as a \u escape,
// one "\n" at the end. Pure functions; no I/O.

import { utf8 } from "./bytes.js";

export const LOG_STREAM = "log";
// Notes added after the log closed (its `stop` was the final chunk) go to this stream; it is
// never closed, so it is not "cut off" (docs/protocol.md C.3.1).
export const ADDENDA_STREAM = "addenda";
export const EVENT_STREAMS = new Set([LOG_STREAM, ADDENDA_STREAM]);
export const MAX_NOTE_CHARS = 2000;

// RFC 3339 UTC with milliseconds, the wire form of every time.
export function nowAt(date = new Date()) {
  return date.toISOString();
}

export function startEntry({ at = nowAt(), stream, chunkBytes, rate = null }) {
  return { at, chunk_bytes: chunkBytes, event: "start", rate, stream };
}

export function chunkEntry({ at = nowAt(), stream, seq, size, final }) {
  return { at, event: "chunk", final, seq, size, stream };
}

export function stopEntry({ at = nowAt(), stream, chunks, bytes }) {
  return { at, bytes, chunks, event: "stop", stream };
}

export function noteEntry({ at = nowAt(), text }) {
  if (typeof text !== "string" || !text.trim()) throw new Error("the note is empty");
  if ([...text].length > MAX_NOTE_CHARS) {
    throw new Error(`a note holds at most ${MAX_NOTE_CHARS} characters`);
  }
  return { at, event: "note", text };
}

export function locationEntry({ at = nowAt(), lat, lon, accuracy = null }) {
  checkRange("latitude", lat, -90, 90);
  checkRange("longitude", lon, -180, 180);
  if (accuracy !== null && !(Number.isFinite(accuracy) && accuracy >= 0)) {
    throw new Error("accuracy must be a distance in metres (0 or more), or null");
  }
  return { accuracy, at, event: "location", lat, lon };
}

function checkRange(name, value, low, high) {
  if (!(Number.isFinite(value) && value >= low && value <= high)) {
    throw new Error(`${name} must be between ${low} and ${high} degrees`);
  }
}

// The entry's line as text (plain ASCII), exactly as the Python writer makes it.
export function encodeEntry(entry) {
  return asciiJson(sortKeys(entry)) + "\n";
}

// The bytes sealed as one chunk of stream `log`.
export function entryBytes(entry) {
  return utf8(encodeEntry(entry));
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
  return out;
}

function asciiJson(value) {
  // JSON.stringify already escapes quotes, backslashes and control characters as Python does;
  // what is left is DEL and non-ASCII, which Python writes as lowercase \u escapes (UTF-16
  // units, so a character outside the BMP becomes its surrogate pair).
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

const FIELDS = {
  start: { stream: "string", chunk_bytes: "integer", rate: "number?" },
  chunk: { stream: "string", seq: "integer", size: "integer", final: "boolean" },
  stop: { stream: "string", chunks: "integer", bytes: "integer" },
  note: { text: "string" },
  location: { lat: "number", lon: "number", accuracy: "number?" },
};

function hasType(value, type) {
  if (type.endsWith("?")) return value === null || value === undefined || hasType(value, type.slice(0, -1));
  if (type === "integer") return Number.isInteger(value) && value >= 0;
  if (type === "number") return typeof value === "number" && Number.isFinite(value);
  return typeof value === type;
}

// One line (or one decrypted chunk) back into an entry; throws on anything malformed. Events
// this version does not know are returned as they are (a newer writer may add some).
export function parseEntry(line) {
  const text = typeof line === "string" ? line : new TextDecoder("utf-8", { fatal: true }).decode(line);
  const entry = JSON.parse(text);
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    throw new Error("an event log entry is a JSON object");
  }
  if (typeof entry.event !== "string" || typeof entry.at !== "string") {
    throw new Error("an event log entry names its event and its time (at)");
  }
  for (const [name, type] of Object.entries(FIELDS[entry.event] || {})) {
    if (!hasType(entry[name], type)) throw new Error(`${entry.event} entry: bad or missing ${name}`);
  }
  if (entry.event === "location") locationEntry(entry);
  return entry;
}

// A whole log (log.jsonl, or the chunks' plaintexts joined): entries in order, and the lines
// that could not be read (by number, 1-based) instead of throwing them away silently.
export function parseEventLog(text) {
  const entries = [];
  const problems = [];
  text.split("\n").forEach((line, index) => {
    if (!line.trim()) return;
    try {
      entries.push(parseEntry(line));
    } catch (error) {
      problems.push({ line: index + 1, error: error.message });
    }
  });
  return { entries, problems };
}

// Only what the person added: notes and locations, in log order.
export function notesAndLocations(entries) {
  return entries.filter((e) => e.event === "note" || e.event === "location");
}

// Text from a bundle made visible as sync/safetext.py does: control characters, bidi overrides,
// invisible separators and the like become \xNN / \uNNNN, so an escape code or an override in
// a note cannot hide or reorder what a reader sees (the DOM takes it as text either way).
const UNSEEN = /[\u0000-\u001f\u007f-\u00a0\u00ad\u061c\u115f\u1160\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufeff\ufff9-\ufffb\ud800-\udfff]/gu;

export function visible(text) {
  return String(text).replace(UNSEEN, (c) => {
    const code = c.codePointAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}`
      : code <= 0xffff ? `\\u${code.toString(16).padStart(4, "0")}`
        : `\\U${code.toString(16).padStart(8, "0")}`;
  });
}

// A location in words, as the report writes it.
export function describeLocation(entry) {
  const within = entry.accuracy === null || entry.accuracy === undefined
    ? "accuracy not known" : `within ${entry.accuracy} m`;
  return `latitude ${entry.lat}, longitude ${entry.lon} (${within})`;
}
