// Chunk descriptors (docs/protocol.md §2.3; Python: crypto/descriptor.py): exactly one encoding.

const DESCRIPTOR = new RegExp("^safehold\\.chunk/v1\\n" +
  "encounter ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\\n" +
  "stream ([a-z][a-z0-9_-]{0,31})\\n" +
  "seq (0|[1-9][0-9]{0,9})\\n" +
  "end (more|final)\\n" +
  "size (0|[1-9][0-9]{0,18})\\n" +
  "sha256 ([0-9a-f]{64})\\n" +
  "time ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z)\\n$");

export const CHUNK_TAG = "safehold.chunk/v1\n";
export const ACCESS_TAG = "safehold.access/v1\n";

export function parseDescriptor(text) {
  const m = DESCRIPTOR.exec(text);
  if (!m) throw new Error("not a canonical chunk descriptor");
  const seq = Number(m[3]);
  const time = m[7];
  if (seq > 0xffffffff) throw new Error("seq out of range");
  if (Number.isNaN(Date.parse(time)) || new Date(time).toISOString() !== time) {
    throw new Error("impossible descriptor time");
  }
  return { encounter: m[1], stream: m[2], seq, final: m[4] === "final", size: Number(m[5]),
    sha256: m[6], time };
}

// safehold.access/v1 (crypto/access.py): encounter, contact, what, time.
export function parseAccess(text) {
  const m = /^safehold\.access\/v1\nencounter (\S+)\ncontact (\S+)\nwhat ([^\n]+)\ntime (\S+)\n$/.exec(text);
  if (!m) throw new Error("not an access record");
  return { encounter: m[1], contact: m[2], what: m[3], time: m[4] };
}

// Device time as descriptors carry it: RFC 3339 UTC with exactly 3 fraction digits.
export const formatTime = (date = new Date()) => date.toISOString();

// The descriptor text a device signs (§2.3), checked by parsing it back: one encoding only.
export function descriptorText({ encounter, stream, seq, final, size, sha256, time }) {
  const text = `${CHUNK_TAG}encounter ${encounter}\nstream ${stream}\nseq ${seq}\n` +
    `end ${final ? "final" : "more"}\nsize ${size}\nsha256 ${sha256}\ntime ${time}\n`;
  parseDescriptor(text);
  return text;
}
