// The recordings shared with this contact: the list (kept up to date), and per recording a
// "Decrypt" button that checks and decrypts everything in the browser, follows a recording
// still in progress, and offers each stream's file and the bundle.

import { Api, ApiError, contactLogin } from "../protocol/api.js";
import { bundleZip } from "../protocol/bundle.js";
import { EncounterReader, streamFile, streamFileName } from "../protocol/encounter_reader.js";
import { ADDENDA_STREAM, EVENT_STREAMS, describeLocation, parseEntry, visible } from "../protocol/eventlog.js";
import { toHex } from "../protocol/bytes.js";
import { loadHeld, saveHeld } from "./store.js";
import { $, downloadUrl, el, show, status } from "./ui.js";

const LIST_EVERY_MS = 5000;
const LIVE_EVERY_MS = 1500;
const shown = new Map(); // encounter id -> list item
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let uid = 0;

function when(rfc3339) {
  return new Date(rfc3339).toLocaleString();
}

const REASONS = {
  immediate: "Shared with you as it is recorded",
  alert: "Shared because an alert was raised",
  check_in: "Shared because they did not check in as safe in time",
};

function encounterItem(entry, membership, api, identity) {
  const button = el("button", { type: "button", text: "Decrypt" });
  const result = el("div", { class: "result" });
  const item = el("li", { "data-encounter": entry.encounter_id },
    el("h3", { text: `Recording started ${when(entry.started_at)}` }),
    el("p", { text: `${REASONS[entry.reason] || entry.reason} (${when(entry.released_at)}). ` +
      `Recording ${entry.encounter_id}.` }),
    button, result);
  button.addEventListener("click", () => {
    button.disabled = true;
    follow(new EncounterReader(api, membership, entry.encounter_id, [identity]), entry, result)
      .finally(() => { button.disabled = false; });
  });
  return item;
}

function streamStatus(s, live) {
  if (s.name === ADDENDA_STREAM) {
    return `${s.chunks.length} note${s.chunks.length === 1 ? "" : "s"} added after the recording stopped`;
  }
  if (s.closed) return `complete: ${s.chunks.length} pieces, the recording ended normally`;
  if (s.waiting.length) return "still arriving…";
  if (live) return `no end yet: ${s.chunks.length} pieces so far, the last recorded ${when(s.lastTime)}`;
  return `cut off after piece ${s.lastSeq} (recorded ${when(s.lastTime)}): nothing after it reached the server`;
}

// Only a stream that begins like a WebM, MP4 or WAV file gets a player; the rest is a download.
function mediaType(bytes, name) {
  const kind = name === "video" ? "video" : "audio";
  const tag = (from, to) => String.fromCharCode(...bytes.subarray(from, to));
  if (tag(0, 4) === "RIFF" && tag(8, 12) === "WAVE") return "audio/wav";
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return `${kind}/webm`;
  if (tag(4, 8) === "ftyp") return `${kind}/mp4`;
  return null;
}

function renderStream(s, urls, live) {
  const item = el("li", { "data-stream": s.name },
    el("strong", { text: s.name }), el("span", { text: ` — ${streamStatus(s, live)}` }));
  const notes = [];
  if (s.missing.length) notes.push(`Pieces that never reached the server: ${s.missing.join(", ")}.`);
  if (s.bad.length) notes.push(`Pieces left out because they failed the checks: ${s.bad.map((c) => c.seq).join(", ")}.`);
  const locked = s.chunks.filter((c) => c.status === "not_decrypted");
  if (locked.length) notes.push(`Pieces your key cannot open (sealed to others): ${locked.map((c) => c.seq).join(", ")}.`);
  for (const note of notes) item.append(el("p", { class: "warn", text: note }));
  if (s.good.length) {
    const bytes = streamFile(s);
    const media = mediaType(bytes, s.name);
    const url = downloadUrl(bytes, media || "application/octet-stream");
    urls.push(url);
    const good = s.good.length === s.chunks.length && !s.missing.length && s.closed;
    const about = `about-stream-${++uid}`;
    item.append(el("p", {}, el("a", { href: url, download: streamFileName(s.name),
      "aria-describedby": about }, "Download"),
    el("span", { id: about, text: ` ${streamFileName(s.name)}, ${bytes.length} bytes` +
      (good ? "" : " (with the gaps above)") })));
    if (media) item.append(el(media.startsWith("video") ? "video" : "audio", { controls: "", src: url,
      preload: "metadata", "aria-label": `Play ${s.name}` }));
  }
  return item;
}

// The event log as people read it: when each stream started and stopped, and every note and
// location the person added, by the phone's clock. Everything in it came out of the bundle, so
// it goes in as text (never HTML) and with invisible characters made visible.
const SAID = {
  start: (e) => `Recording of ${visible(e.stream)} started`,
  stop: (e) => `Recording of ${visible(e.stream)} stopped (${e.chunks} pieces)`,
  note: (e) => `Note: ${visible(e.text)}`,
  location: (e) => `Location: ${describeLocation(e)}`,
};

function eventTimeline(streams) {
  const rows = [];
  for (const s of streams.filter((x) => EVENT_STREAMS.has(x.name))) {
    for (const chunk of s.good) {
      let entry;
      try {
        entry = parseEntry(chunk.plaintext);
      } catch {
        continue; // still in log.jsonl as it is; only readable entries are described here
      }
      if (!SAID[entry.event]) continue;
      rows.push({ entry, later: s.name === ADDENDA_STREAM, order: [s.name !== "log", chunk.seq] });
    }
  }
  if (!rows.length) return null;
  rows.sort((a, b) => (a.order[0] - b.order[0]) || (a.order[1] - b.order[1]));
  const list = el("ol", { class: "timeline", "aria-label": "Notes and locations" });
  for (const { entry, later } of rows) {
    const time = Number.isNaN(Date.parse(entry.at)) ? visible(entry.at) : when(entry.at);
    list.append(el("li", { "data-event": entry.event },
      el("time", { datetime: visible(entry.at), text: time }),
      el("span", { text: ` — ${SAID[entry.event](entry)}` +
        (later ? " (added after the recording stopped)" : "") })));
  }
  return el("section", {}, el("h4", { text: "Timeline: notes and locations (the phone's clock)" }),
    list);
}

// Object URLs of the previous rendering are released, so following a long recording does not
// keep every intermediate copy of its files alive.
const objectUrls = new WeakMap();

function render(reader, result, live) {
  for (const url of objectUrls.get(result) || []) URL.revokeObjectURL(url);
  const urls = [];
  objectUrls.set(result, urls);
  const streams = reader.streams();
  const lines = [];
  const problems = el("ul", { class: "problems" });
  for (const p of reader.problems) problems.append(el("li", { text: p.message }));
  const failed = reader.problems.filter((p) => !["unreadable", "not_decrypted"].includes(p.check));
  if (failed.length) {
    lines.push(el("p", { class: "error", role: "alert",
      text: "Some pieces failed the checks: they were changed or forged after the phone " +
        "signed them. They are not played or offered for download." }));
  } else if (reader.problems.length) {
    lines.push(el("p", { class: "warn", role: "alert",
      text: "Some pieces could not be fetched or opened; they are left out (below)." }));
  }
  if (reader.problems.length) {
    lines.push(problems);
  } else if (streams.length) {
    lines.push(el("p", { class: "ok", text: "Checked: every piece is exactly what the phone " +
      "signed and the server witnessed." }));
  }
  if (live) lines.push(el("p", { text: "Following the recording as it arrives…" }));
  if (!streams.length) lines.push(el("p", { text: "No pieces have arrived yet." }));
  lines.push(el("ul", { class: "streams" }, ...streams.map((s) => renderStream(s, urls, live))));
  const timeline = eventTimeline(streams);
  if (timeline) lines.push(timeline);
  result.replaceChildren(...lines);
}

async function follow(reader, entry, result) {
  result.replaceChildren(el("p", { text: "Checking and decrypting…" }));
  try {
    reader.held = (await loadHeld(reader.m.server_name, reader.id)) || null;
    for (;;) {
      await reader.refresh();
      await keepLargest(reader);
      await reader.readChunks();
      const streams = reader.streams();
      // (the addenda never close: notes may be added to a stopped recording at any time)
      const live = !streams.length || streams.some((s) => (!s.closed && s.name !== ADDENDA_STREAM) ||
        s.waiting.length);
      // A stream with no final piece may still be recording (immediate release): keep
      // following while new pieces keep coming; a cut-off recording simply stops growing.
      render(reader, result, live);
      if (!live || !(await grew(reader))) break;
    }
    render(reader, result, false);
    await offerBundle(reader, entry, result);
  } catch (exc) {
    result.replaceChildren(el("p", { class: "error", role: "alert",
      text: `This recording could not be checked: ${exc.message}` }));
  }
}

// The largest checkpoint verified so far is kept: a later visit refuses a smaller or other log.
async function keepLargest(reader) {
  const cp = reader.checkpoint;
  if (reader.held && cp.size <= reader.held.size) return;
  reader.held = { size: cp.size, root: toHex(cp.root), note: cp.note,
    seen_at: new Date().toISOString() };
  await saveHeld(reader.m.server_name, reader.id, reader.held);
}

// The encrypted bundle, for `safehold verify` / `safehold decrypt` or a lawyer: the same zip
// `safehold fetch --zip` writes. It carries no key, so it is safe to hand on.
async function offerBundle(reader, entry, result) {
  const zip = await bundleZip(reader, entry);
  result.append(el("p", {}, el("a", { href: downloadUrl(zip, "application/zip"),
    download: `safehold-${reader.id}.zip` }, "Download bundle"),
  el("span", { text: ` (encrypted, ${zip.length} bytes: check it with safehold verify)` })));
}

// The network or the server failing for a moment (not a check that failed).
function transient(exc) {
  return exc instanceof TypeError || (exc instanceof ApiError && (exc.status >= 500 || exc.status === 429));
}

// Wait for the log to grow by a chunk (or for a piece to fetch again); give up after ~30 s
// without one. A network failure meanwhile is waited out; a log that fails its checks is not.
async function grew(reader) {
  const before = reader.chunks.size;
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, LIVE_EVERY_MS));
    try {
      await reader.refresh();
    } catch (exc) {
      if (!transient(exc)) throw exc;
      continue;
    }
    if (reader.chunks.size > before) return true;
    if ([...reader.chunks.values()].some((c) => c.status === "waiting")) return true;
  }
  return false;
}

const STATUS = {
  pending: "The person who invited you has not confirmed you yet: they do so on their phone " +
    "(and compare the safety number with you). Until then nothing is shared with you.",
  revoked: "The person who invited you has removed you as a trusted contact.",
  active: "",
};

async function refreshList(opened) {
  for (const { record, keys, api } of opened) {
    const me = await api.json("GET", "/v1/contact", { auth: true });
    $("membership-status").textContent = STATUS[me.status] ?? "";
    const { encounters } = await api.json("GET", "/v1/released", { auth: true });
    for (const entry of encounters) {
      if (!UUID.test(entry.encounter_id) || shown.has(entry.encounter_id)) continue;
      const item = encounterItem(entry, record.membership, api, keys.identity);
      shown.set(entry.encounter_id, item);
      $("encounters").append(item);
    }
  }
  $("recordings-empty").hidden = shown.size > 0;
}

export function startReceiving(opened) {
  const withApi = opened.map((o) => ({ ...o, api: new Api("", contactLogin(
    o.record.membership.contact_id, o.keys.signing_key, o.record.membership.server_name)) }));
  show("recordings");
  const tick = () => refreshList(withApi)
    .catch((exc) => status(`Could not reach the server: ${exc.message}`, "error"))
    .finally(() => setTimeout(tick, LIST_EVERY_MS));
  tick();
}
