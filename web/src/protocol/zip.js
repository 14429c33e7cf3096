// A zip archive of STORED members (no compression), as `safehold fetch --zip` writes bundles
// (docs/protocol.md §4.1: stored only, unique names, no encryption). Below 4 GiB: no zip64.

import { utf8 } from "./bytes.js";

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function dosTime(date) {
  const time = (date.getUTCHours() << 11) | (date.getUTCMinutes() << 5) | (date.getUTCSeconds() >> 1);
  const day = ((date.getUTCFullYear() - 1980) << 9) | ((date.getUTCMonth() + 1) << 5) | date.getUTCDate();
  return [time, day];
}

// entries: [{name, bytes}] → Uint8Array of the whole archive, members in name order.
export function storedZip(entries, date = new Date()) {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const names = new Set();
  const [time, day] = dosTime(date);
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const { name, bytes } of sorted) {
    if (names.has(name)) throw new Error(`${name} twice in one zip`);
    names.add(name);
    const n = utf8(name);
    const flags = /^[\x20-\x7e]*$/.test(name) ? 0 : 0x800; // UTF-8 names flagged, as zipfile does
    const crc = crc32(bytes);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, flags, true);
    local.setUint16(8, 0, true); // STORED
    local.setUint16(10, time, true);
    local.setUint16(12, day, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, bytes.length, true);
    local.setUint32(22, bytes.length, true);
    local.setUint16(26, n.length, true);
    locals.push(new Uint8Array(local.buffer), n, bytes);
    const central = new DataView(new ArrayBuffer(46));
    central.setUint32(0, 0x02014b50, true);
    central.setUint16(4, 20, true);
    central.setUint16(6, 20, true);
    central.setUint16(8, flags, true);
    central.setUint16(10, 0, true);
    central.setUint16(12, time, true);
    central.setUint16(14, day, true);
    central.setUint32(16, crc, true);
    central.setUint32(20, bytes.length, true);
    central.setUint32(24, bytes.length, true);
    central.setUint16(28, n.length, true);
    central.setUint32(42, offset, true);
    centrals.push(new Uint8Array(central.buffer), n);
    offset += 30 + n.length + bytes.length;
  }
  const cdSize = centrals.reduce((s, p) => s + p.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, sorted.length, true);
  end.setUint16(10, sorted.length, true);
  end.setUint32(12, cdSize, true);
  end.setUint32(16, offset, true);
  if (offset + cdSize > 0xffffffff) throw new Error("a bundle over 4 GiB needs zip64");
  const parts = [...locals, ...centrals, new Uint8Array(end.buffer)];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
