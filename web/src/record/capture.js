// One recording (docs/protocol.md C.3): MediaRecorder slices every second, audio and video as
// separate streams (so sound gets through a poor network), each slice sealed and committed in
// recording order, every slice logged in the event log. The end of a stream is learnt only
// after its last slice, so each stream ends with an empty `final` chunk; the log's last stop
// entry is the log's final chunk.

import { formatTime } from "../protocol/descriptor.js";
import {
  ADDENDA_STREAM, LOG_STREAM, chunkEntry, entryBytes, startEntry, stopEntry,
} from "../protocol/eventlog.js";
import { commit, sealPiece } from "./sealer.js";
import { put } from "./store.js";

export const TIMESLICE_MS = 1000;
const TYPES = { audio: ["audio/webm;codecs=opus", "audio/webm"], video: ["video/webm;codecs=vp8", "video/webm"] };

function mimeFor(stream) {
  return TYPES[stream].find((t) => MediaRecorder.isTypeSupported(t)) || "";
}

export class Recording {
  constructor({ signer, recipients, onChunk = () => {}, onError = () => {} }) {
    this.signer = signer;
    this.recipients = recipients;
    this.onChunk = onChunk;
    this.onError = onError;
    this.encounter = crypto.randomUUID();
    this.seqs = { [LOG_STREAM]: 0 };
    this.totals = {};
    this.recorders = [];
    this.chain = Promise.resolve();
  }

  // Pieces are sealed one after the other, so seqs follow recording order.
  enqueue(task) {
    this.chain = this.chain.then(task).catch((exc) => this.onError(exc));
    return this.chain;
  }

  async seal(stream, bytes, final) {
    const seq = this.seqs[stream];
    this.seqs[stream] = seq + 1;
    const started = performance.now();
    const chunk = await commit(await sealPiece(bytes,
      { encounter: this.encounter, stream, seq, final }, this.recipients, this.signer));
    // Seal + sign + commit, for bench/recorder.py (a timeline entry, nothing is sent anywhere).
    performance.measure(`safehold-seal-${stream}`, { start: started });
    this.onChunk(chunk);
    return chunk;
  }

  log(entry, final = false) {
    return this.enqueue(() => this.seal(LOG_STREAM, entryBytes(entry), final));
  }

  // A note or location after the stop closed the log goes to the never-closed `addenda` stream
  // of the same encounter (docs/protocol.md C.3.1).
  addendum(entry) {
    this.seqs[ADDENDA_STREAM] = this.seqs[ADDENDA_STREAM] || 0;
    return this.enqueue(() => this.seal(ADDENDA_STREAM, entryBytes(entry), false));
  }

  async start(withVideo) {
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: withVideo });
    this.media = media;
    await put("encounters", { id: this.encounter, started_at: formatTime(), created: false });
    const tracks = { audio: media.getAudioTracks(), video: withVideo ? media.getVideoTracks() : [] };
    for (const [stream, list] of Object.entries(tracks)) {
      if (!list.length) continue;
      this.seqs[stream] = 0;
      this.totals[stream] = { chunks: 0, bytes: 0 };
      // Slices are cut by time, not by bytes: chunk_bytes 0, and the slice length beside it.
      this.log({ ...startEntry({ stream, chunkBytes: 0 }), timeslice_ms: TIMESLICE_MS });
      const recorder = new MediaRecorder(new MediaStream(list), { mimeType: mimeFor(stream) });
      recorder.ondataavailable = (event) => this.enqueue(async () => {
        const bytes = new Uint8Array(await event.data.arrayBuffer());
        if (!bytes.length) return;
        await this.mediaChunk(stream, bytes, false);
      });
      recorder.start(TIMESLICE_MS);
      this.recorders.push({ stream, recorder });
    }
    return this.encounter;
  }

  async mediaChunk(stream, bytes, final) {
    const chunk = await this.seal(stream, bytes, final);
    this.totals[stream].chunks += 1;
    this.totals[stream].bytes += bytes.length;
    await this.seal(LOG_STREAM, entryBytes(chunkEntry({ stream, seq: chunk.seq, size: bytes.length,
      final })), false);
  }

  async stop() {
    await Promise.all(this.recorders.map(({ recorder }) => new Promise((resolve) => {
      recorder.addEventListener("stop", resolve, { once: true });
      recorder.stop();
    })));
    for (const track of this.media.getTracks()) track.stop();
    this.recorders.forEach(({ stream }, i) => {
      this.enqueue(() => this.mediaChunk(stream, new Uint8Array(0), true));
      const last = i === this.recorders.length - 1;
      this.enqueue(() => this.seal(LOG_STREAM, entryBytes(stopEntry({ stream,
        chunks: this.totals[stream].chunks, bytes: this.totals[stream].bytes })), last));
    });
    await this.chain;
  }
}
