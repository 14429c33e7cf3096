// The upload queue (docs/protocol.md C.5, C.6): sends what the outbox holds, event log first,
// then audio, then video; creates encounters first; verifies every receipt (pinned server key,
// inclusion, consistency with every checkpoint verified before) and only then marks the chunk
// acknowledged, in the same transaction as the checkpoint it proved. Network failures and
// 408/425/429/5xx wait with exponential backoff and full jitter; nothing is ever dropped.

import { ApiError } from "../protocol/api.js";
import { toB64, utf8 } from "../protocol/bytes.js";
import { UntrustedReceipt, linkCheckpoint, openReceipt } from "../protocol/receipt.js";
import { checkPinnedServer, deviceApi } from "./device.js";
import { PRIORITY } from "./sealer.js";
import { all, get, put, queuedKeys, remove, run } from "./store.js";

const RETRYABLE = new Set([408, 425, 429]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Uploader {
  constructor(device, onStatus = () => {}) {
    this.device = device;
    this.api = deviceApi(device);
    this.onStatus = onStatus;
    this.running = null;
    this.again = false;
    this.attempts = 0;
    this.handshaken = false;
  }

  // Start sending (or look again once the current pass ends).
  kick() {
    this.again = true;
    if (!this.running) {
      this.running = this.loop().finally(() => { this.running = null; });
    }
    return this.running;
  }

  async loop() {
    while (this.again) {
      this.again = false;
      try {
        await this.pass();
        this.attempts = 0;
      } catch (exc) {
        if (exc instanceof UntrustedReceipt || exc.untrusted) {
          this.onStatus({ kind: "untrusted", message: exc.message });
          return;
        }
        if (!retryable(exc)) {
          this.onStatus({ kind: "refused", message: exc.message });
          return;
        }
        this.attempts += 1;
        this.handshaken = false;
        const waiting = (await queuedKeys()).length;
        this.onStatus({ kind: "offline", waiting, message: exc.message });
        const cap = Math.min(10_000, 200 * 2 ** this.attempts);
        await sleep(Math.max(500, Math.random() * cap));
        this.again = true;
      }
    }
    this.onStatus({ kind: "idle", waiting: (await queuedKeys()).length });
  }

  async pass() {
    if (!this.handshaken) {
      try {
        await checkPinnedServer(this.device, this.api);
      } catch (exc) {
        if (exc instanceof ApiError || exc instanceof TypeError) throw exc;
        exc.untrusted = true;
        throw exc;
      }
      this.handshaken = true;
    }
    for (;;) {
      await this.sendActions();
      // The most urgent first; look again after each, since a recording keeps adding log
      // entries. Keys only (no bodies): "<encounter>/<stream>/<seq, 10 digits>".
      const keys = (await queuedKeys()).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
      if (!keys.length) return;
      this.onStatus({ kind: "sending", waiting: keys.length });
      const chunk = await get("chunks", keys[0]);
      if (chunk && chunk.state === "queued") await this.send(chunk);
    }
  }

  async ensureEncounter(id) {
    const encounter = await get("encounters", id);
    if (encounter && encounter.created) return;
    await this.api.json("PUT", `/v1/encounters/${id}`, { auth: true,
      body: { started_at: encounter ? encounter.started_at : new Date().toISOString() } });
    await put("encounters", { ...(encounter || { id }), created: true });
  }

  async send(chunk) {
    await this.ensureEncounter(chunk.encounter);
    const path = `/v1/encounters/${chunk.encounter}/streams/${chunk.stream}/chunks/${chunk.seq}`;
    let receipt;
    try {
      receipt = await this.api.json("PUT", path, { auth: true, raw: chunk.bytes, headers: {
        "Content-Type": "application/octet-stream", "Safehold-Descriptor": toB64(utf8(chunk.note)),
      } });
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) {
        // The server does not know the encounter (a restored backup): create it again.
        const encounter = await get("encounters", chunk.encounter);
        await put("encounters", { ...encounter, created: false });
        throw Object.assign(new Error("the server lost the encounter; creating it again"), { status: 503 });
      }
      if (exc instanceof ApiError && !retryable(exc)) {
        // A permanent refusal for this chunk: keep it (evidence), say so, go on with the rest.
        await put("chunks", { ...chunk, state: "refused", error: `${exc.code}: ${exc.message}` });
        this.onStatus({ kind: "chunk-refused", message: `${chunk.key}: ${exc.message}` });
        return;
      }
      throw exc;
    }
    await this.acknowledge(chunk, receipt);
  }

  async acknowledge(chunk, receipt) {
    const server = { name: this.device.server.name, key: this.device.server.key };
    const opened = await openReceipt(receipt, chunk, server);
    const kept = (await get("checkpoints", chunk.encounter)) || { encounter: chunk.encounter, known: [] };
    const known = await linkCheckpoint(kept.known, opened, async (first, second) => (await this.api.json(
      "GET", `/v1/encounters/${chunk.encounter}/log/consistency?first=${first}&second=${second}`,
      { auth: true })).proof);
    await run(["chunks", "checkpoints"], "readwrite", (s) => {
      s.chunks.put({ ...chunk, state: "acknowledged", receipt, acknowledgedAt: new Date().toISOString() });
      s.checkpoints.put({ encounter: chunk.encounter, known });
    });
  }

  // Alerts and safe marks wait here (durably) until their encounter exists on the server.
  async sendActions() {
    for (const action of await all("actions")) {
      await this.ensureEncounter(action.encounter);
      await this.api.json("POST", `/v1/encounters/${action.encounter}/${action.kind}`, { auth: true });
      await remove("actions", action.key);
      this.onStatus({ kind: "action-sent", action: action.kind });
    }
  }
}

const rank = (key) => PRIORITY[key.split("/")[1]] ?? 3;

function retryable(exc) {
  if (exc instanceof TypeError) return true; // fetch: the network failed
  const status = exc.status;
  return status === undefined || RETRYABLE.has(status) || status >= 500;
}

export const queueAction = (encounter, kind) =>
  put("actions", { key: `${Date.now()}-${kind}-${encounter}`, encounter, kind });
