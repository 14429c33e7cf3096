// The event log entries against docs/protocol.md C.3.1, whose example lines the Python writer
// made (tests/test_note_cli.py checks the same lines against sync/upload/eventlog.py).
import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromUtf8 } from "../src/protocol/bytes.js";
import {
  chunkEntry, encodeEntry, entryBytes, locationEntry, MAX_NOTE_CHARS, noteEntry, notesAndLocations,
  parseEntry, parseEventLog, startEntry, stopEntry,
} from "../src/protocol/eventlog.js";
import { example } from "./vectors.mjs";

const lines = () => example("event-log").trimEnd().split("\n").map((l) => l + "\n");

test("the builders write the documented lines byte for byte", () => {
  const built = [
    startEntry({ at: "2026-11-28T03:30:00.120Z", stream: "audio", chunkBytes: 262144 }),
    chunkEntry({ at: "2026-11-28T03:30:01.125Z", stream: "audio", seq: 0, size: 262144, final: false }),
    noteEntry({ at: "2026-11-28T03:30:04.310Z", text: 'Badge 4471, "Officer" Müller <said> stay\tback' }),
    locationEntry({ at: "2026-11-28T03:30:04.310Z", lat: 40.7128, lon: -74.006, accuracy: 12.5 }),
    locationEntry({ at: "2026-11-28T03:30:09.002Z", lat: 40.71291, lon: -74.00587 }),
    chunkEntry({ at: "2026-11-28T03:30:12.450Z", stream: "audio", seq: 1, size: 8000, final: true }),
    stopEntry({ at: "2026-11-28T03:30:12.451Z", stream: "audio", chunks: 2, bytes: 270144 }),
  ];
  assert.deepEqual(built.map(encodeEntry), lines());
  assert.equal(fromUtf8(entryBytes(built[2])), lines()[2]);
  assert.match(lines()[2], /^[\x20-\x7e]+\n$/); // plain ASCII, whatever was typed
});

test("every documented line parses and re-encodes to itself", () => {
  for (const line of lines()) assert.equal(encodeEntry(parseEntry(line)), line);
  const { entries, problems } = parseEventLog(lines().join(""));
  assert.equal(problems.length, 0);
  assert.deepEqual(notesAndLocations(entries).map((e) => e.event), ["note", "location", "location"]);
  assert.equal(entries[2].text, 'Badge 4471, "Officer" Müller <said> stay\tback');
  assert.equal(entries[4].accuracy, null);
});

test("characters outside the BMP and controls are escaped as Python's json does", () => {
  const line = encodeEntry(noteEntry({ at: "2026-11-28T03:30:04.310Z", text: "a\u0001\u2028😀\u007f" }));
  assert.equal(line, '{"at":"2026-11-28T03:30:04.310Z","event":"note","text":"a\\u0001\\u2028\\ud83d\\ude00\\u007f"}\n');
});

test("bad notes and locations are refused before anything is sealed", () => {
  assert.throws(() => noteEntry({ text: "" }), /empty/);
  assert.throws(() => noteEntry({ text: " \n\t" }), /empty/);
  assert.throws(() => noteEntry({ text: "x".repeat(MAX_NOTE_CHARS + 1) }), /at most 2000/);
  assert.ok(noteEntry({ text: "é".repeat(MAX_NOTE_CHARS) }));
  assert.throws(() => locationEntry({ lat: 90.5, lon: 0 }), /latitude/);
  assert.throws(() => locationEntry({ lat: 0, lon: -180.01 }), /longitude/);
  assert.throws(() => locationEntry({ lat: NaN, lon: 0 }), /latitude/);
  assert.throws(() => locationEntry({ lat: 0, lon: 0, accuracy: -1 }), /accuracy/);
  assert.throws(() => locationEntry({ lat: "1", lon: 0 }), /latitude/);
});

test("malformed lines are named, not dropped silently; unknown events are kept", () => {
  const text = [lines()[2].trim(), "{not json", '{"event":"note","at":"x"}',
    '{"event":"location","at":"x","lat":91,"lon":0,"accuracy":null}', '["note"]',
    '{"event":"badge","at":"x","number":"4471"}'].join("\n");
  const { entries, problems } = parseEventLog(text);
  assert.deepEqual(problems.map((p) => p.line), [2, 3, 4, 5]);
  assert.match(problems[1].error, /note entry: bad or missing text/);
  assert.deepEqual(entries.map((e) => e.event), ["note", "badge"]);
});
