// Reads one released encounter as a contact and checks it as `safehold verify` does (§4.4):
// the latest checkpoint (server key, origin), every leaf hashing to its root, each chunk leaf a
// descriptor signed by one of the owner's device keys the invitation proved, each receipt's
// checkpoint and inclusion proof, each receipt root equal to the log's root at that size
// (consistency), and each age file's size, SHA-256 and slot against its descriptor. Only then is
// a chunk decrypted. Can be refreshed: a recording followed live grows between calls.

import { fromB64, fromUtf8, toHex, utf8 } from "./bytes.js";
import { decryptChunk, readSlot } from "./agefile.js";
import { encounterOrigin, openCheckpoint } from "./checkpoint.js";
import { heldContradiction } from "./held.js";
import { ACCESS_TAG, CHUNK_TAG, parseAccess, parseDescriptor } from "./descriptor.js";
import { sha256 } from "./hash.js";
import { PrefixRoots, leafHash, verifyInclusion } from "./merkle.js";
import { openNote, splitNote } from "./signing.js";
import { EVENT_STREAMS } from "./eventlog.js";

const PAGE = 1000;
const PARALLEL = 4;
const MAX_ATTEMPTS = 5;

export class LogError extends Error {}

const rootOfEmpty = () => sha256(new Uint8Array(0));

export class EncounterReader {
  constructor(api, membership, encounterId, identities) {
    this.api = api;
    this.m = membership;
    this.id = encounterId;
    this.identities = identities;
    this.origin = encounterOrigin(membership.server_name, encounterId);
    this.leaves = []; // Uint8Array each
    this.roots = new PrefixRoots(); // the log's root at every size, for the consistency checks
    this.checkpoint = null; // {size, root, note}
    this.held = null; // the largest checkpoint verified before, kept by the page (held.js)
    this.chunks = new Map(); // "stream/seq" -> chunk record
    this.access = [];
    this.problems = []; // {check, message, stream?, seq?}
  }

  path(suffix = "") {
    return `/v1/encounters/${this.id}${suffix}`;
  }

  problem(check, message, chunk = null) {
    const p = { check, message };
    if (chunk) Object.assign(p, { stream: chunk.stream, seq: chunk.seq });
    this.problems.push(p);
    if (chunk) chunk.problems.push(p);
  }

  // New leaves up to the latest checkpoint; returns the new chunk records.
  async refresh() {
    const latest = await this.api.json("GET", this.path("/log/checkpoint"), { auth: true });
    const cp = await openCheckpoint(latest.checkpoint, this.m.server_key, this.origin);
    if (this.checkpoint && cp.size < this.checkpoint.size) {
      throw new LogError(`the server's log shrank from ${this.checkpoint.size} to ${cp.size} entries`);
    }
    const leaves = [...this.leaves];
    while (leaves.length < cp.size) {
      const end = Math.min(cp.size, leaves.length + PAGE);
      const page = await this.api.json("GET",
        this.path(`/log/leaves?start=${leaves.length}&end=${end}`), { auth: true });
      if (!page.leaves.length) throw new LogError("the server sent no leaves");
      for (const leaf of page.leaves) {
        if (leaf.index !== leaves.length) throw new LogError("leaves out of order");
        leaves.push(fromB64(leaf.data));
      }
    }
    const roots = this.roots.copy();
    for (let i = roots.size; i < leaves.length; i++) await roots.add(await leafHash(leaves[i]));
    const root = cp.size ? roots.rootAt(cp.size) : await rootOfEmpty();
    if (toHex(root) !== toHex(cp.root)) {
      throw new LogError("the log's entries do not hash to the signed checkpoint: it was altered");
    }
    const contradiction = heldContradiction(this.held, cp.size, (n) => roots.rootAt(n));
    if (contradiction) throw new LogError(contradiction);
    const first = this.leaves.length;
    this.leaves = leaves;
    this.roots = roots;
    this.checkpoint = { ...cp, note: latest.checkpoint };
    const added = [];
    for (let i = first; i < leaves.length; i++) {
      const chunk = await this.classify(i);
      if (chunk) added.push(chunk);
    }
    return added;
  }

  async classify(index) {
    let text;
    try {
      text = fromUtf8(this.leaves[index]);
    } catch {
      this.problem("log_leaf", `log entry ${index} is not text`);
      return null;
    }
    if (text.startsWith(ACCESS_TAG)) {
      try {
        const record = parseAccess((await openNote(text, [this.m.server_key])).text);
        this.access.push({ index, ...record });
      } catch (exc) {
        this.problem("access_log", `log entry ${index}: ${exc.message}`);
      }
      return null;
    }
    if (!text.startsWith(CHUNK_TAG)) return null; // unknown kind: not evidence of alteration
    let d;
    try {
      d = parseDescriptor(splitNote(text).text);
    } catch (exc) {
      this.problem("log_leaf", `log entry ${index} is not a chunk descriptor: ${exc.message}`);
      return null;
    }
    const chunk = { ...d, note: text, leafIndex: index, problems: [], status: "waiting",
      plaintext: null, bytes: null, receipt: null, signedBy: null };
    const key = `${d.stream}/${d.seq}`;
    if (this.chunks.has(key)) {
      this.problem("log_duplicate", `${key} is logged twice`, chunk);
      return null;
    }
    this.chunks.set(key, chunk);
    try {
      const { signers } = await openNote(text, this.m.owner_device_keys);
      chunk.signedBy = signers[0];
    } catch (exc) {
      this.problem("descriptor_signature", `${key}: its descriptor is not signed by the owner's ` +
        `devices (${exc.message}): forged`, chunk);
    }
    if (d.encounter !== this.id) this.problem("foreign_chunk", `${key} names another encounter`, chunk);
    if (chunk.problems.length) chunk.status = "forged";
    return chunk;
  }

  // Check and decrypt every chunk not yet done (PARALLEL at a time).
  async readChunks(onChunk = () => {}) {
    const todo = [...this.chunks.values()].filter((c) => c.status === "waiting");
    const work = async () => {
      while (todo.length) {
        const chunk = todo.shift();
        await this.readChunk(chunk);
        onChunk(chunk);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, work));
  }

  // A fetch that fails (network, server error) leaves the chunk waiting for the next round;
  // only after MAX_ATTEMPTS rounds is it named as unreadable. A check that fails is final.
  async readChunk(chunk) {
    const key = `${chunk.stream}/${chunk.seq}`;
    const base = this.path(`/streams/${chunk.stream}/chunks/${chunk.seq}`);
    let receipt;
    let bytes;
    try {
      receipt = await this.api.json("GET", `${base}/receipt`, { auth: true });
      bytes = await this.api.bytes(base);
    } catch (exc) {
      chunk.attempts = (chunk.attempts || 0) + 1;
      if (chunk.attempts >= MAX_ATTEMPTS) {
        chunk.status = "unreadable";
        this.problem("unreadable", `${key} could not be fetched from the server (${exc.message})`, chunk);
      }
      return;
    }
    chunk.receipt = receipt;
    chunk.bytes = bytes;
    try {
      await this.checkReceipt(chunk);
      if (!chunk.problems.length) await this.checkBytes(chunk);
    } catch (exc) {
      this.problem("receipt", `${key}: the server's receipt is malformed (${exc.message})`, chunk);
    }
    if (chunk.problems.length) {
      chunk.status = "bad";
      return;
    }
    try {
      chunk.plaintext = await decryptChunk(chunk.bytes, this.identities);
      chunk.status = "good";
    } catch (exc) {
      chunk.status = "not_decrypted";
      this.problem("not_decrypted", `${key} could not be decrypted with your key (${exc.message})`, chunk);
    }
  }

  async checkReceipt(chunk) {
    const r = chunk.receipt;
    const key = `${chunk.stream}/${chunk.seq}`;
    if (r.descriptor !== chunk.note || r.stream !== chunk.stream || r.seq !== chunk.seq ||
        r.encounter_id !== this.id) {
      this.problem("receipt", `${key}: the receipt names another chunk or descriptor`, chunk);
      return;
    }
    let cp;
    try {
      cp = await openCheckpoint(r.checkpoint, this.m.server_key, this.origin);
    } catch (exc) {
      this.problem("receipt_checkpoint", `${key}: ${exc.message}`, chunk);
      return;
    }
    const proof = r.inclusion_proof.map((h) => fromB64(h));
    if (cp.size !== r.tree_size || r.leaf_index !== chunk.leafIndex ||
        !(await verifyInclusion(await leafHash(utf8(chunk.note)), r.leaf_index, r.tree_size, proof, cp.root))) {
      this.problem("inclusion_proof", `${key}: the inclusion proof does not put it in the log`, chunk);
      return;
    }
    if (r.tree_size > this.roots.size || toHex(this.roots.rootAt(r.tree_size)) !== toHex(cp.root)) {
      this.problem("log_consistency", `${key}: the log was rewritten after its receipt`, chunk);
    }
  }

  async checkBytes(chunk) {
    const key = `${chunk.stream}/${chunk.seq}`;
    const digest = toHex(await sha256(chunk.bytes));
    if (chunk.bytes.length !== chunk.size || digest !== chunk.sha256) {
      this.problem("chunk_digest", `${key} was altered: it has ${chunk.bytes.length} bytes with ` +
        `SHA-256 ${digest}, but its signed descriptor says ${chunk.size} bytes, ${chunk.sha256}`, chunk);
      return;
    }
    let slot;
    try {
      slot = readSlot(chunk.bytes);
    } catch (exc) {
      this.problem("slot", `${key}: ${exc.message}`, chunk);
      return;
    }
    if (slot.encounter !== this.id || slot.stream !== chunk.stream || slot.seq !== chunk.seq ||
        slot.final !== chunk.final) {
      this.problem("misplaced", `${key}: its slot says ${slot.stream}/${slot.seq}`, chunk);
    }
  }

  // Per stream: what arrived, gaps, whether it was closed, and the good plaintext pieces.
  streams() {
    const byStream = new Map();
    for (const c of this.chunks.values()) {
      if (!byStream.has(c.stream)) byStream.set(c.stream, []);
      byStream.get(c.stream).push(c);
    }
    return [...byStream.entries()].sort().map(([name, chunks]) => {
      chunks.sort((a, b) => a.seq - b.seq);
      const seqs = new Set(chunks.map((c) => c.seq));
      const last = chunks[chunks.length - 1];
      const missing = [];
      for (let s = 0; s < last.seq; s++) if (!seqs.has(s)) missing.push(s);
      const finalChunk = chunks.find((c) => c.final && c.status === "good") ||
        chunks.find((c) => c.final);
      return {
        name, chunks, missing, closed: Boolean(finalChunk), lastSeq: last.seq,
        lastTime: last.time,
        good: chunks.filter((c) => c.status === "good"),
        bad: chunks.filter((c) => ["bad", "forged", "unreadable"].includes(c.status)),
        waiting: chunks.filter((c) => c.status === "waiting"),
      };
    });
  }
}

// The file of one stream: the good chunks' plaintexts in seq order (never closing a gap
// silently: the caller shows stream.missing and stream.bad beside it).
export function streamFile(stream) {
  const pieces = stream.good.map((c) => (EVENT_STREAMS.has(stream.name) ? logLine(c.plaintext) : c.plaintext));
  const size = pieces.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// Like safehold decrypt: each event-log entry on its own line.
function logLine(bytes) {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 10) end--;
  const line = new Uint8Array(end + 1);
  line.set(bytes.subarray(0, end));
  line[end] = 10;
  return line;
}

export function streamFileName(name) {
  return EVENT_STREAMS.has(name) ? `${name}.jsonl` : `${name}.bin`;
}
