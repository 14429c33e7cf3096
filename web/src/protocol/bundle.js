// The encrypted bundle of one encounter (docs/protocol.md §4: the layout and files
// `safehold fetch` writes), made from what an EncounterReader fetched and checked, zipped as
// `safehold fetch --zip` does. It holds only ciphertext and public statements: no key.

import { toB64, utf8 } from "./bytes.js";
import { fingerprint, parseVerifier } from "./signing.js";
import { storedZip } from "./zip.js";

// JSON as Python's json.dumps(sort_keys=True) writes it (", " and ": "; indent as given).
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

function jsonl(records) {
  return utf8(records.map((r) => pyJson(r) + "\n").join(""));
}

// json.dumps(value, sort_keys=True): Python's ", " and ": " separators.
function pyJson(value) {
  if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}: ${pyJson(value[k])}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

const prettyJson = (v) => utf8(JSON.stringify(sortKeys(v), null, 2) + "\n");

export function seqName(seq) {
  return seq < 1e8 ? String(seq).padStart(8, "0") : String(seq);
}

// Consistency proofs from every receipt's tree size to the latest checkpoint (§4.2), four
// requests at a time (each is a logged read: one at a time costs a server commit each).
async function consistencyProofs(reader, sizes) {
  const latest = reader.checkpoint.size;
  const wanted = [...new Set(sizes)].filter((n) => n > 0 && n < latest).sort((a, b) => a - b);
  const proofs = new Array(wanted.length);
  let next = 0;
  const work = async () => {
    while (next < wanted.length) {
      const i = next++;
      const answer = await reader.api.json("GET",
        reader.path(`/log/consistency?first=${wanted[i]}&second=${latest}`), { auth: true });
      proofs[i] = { first: wanted[i], second: latest, proof: answer.proof };
    }
  };
  await Promise.all([work(), work(), work(), work()]);
  return proofs;
}

async function manifest(reader, encounter, fetchedAt) {
  const devices = [];
  for (const key of reader.m.owner_device_keys) {
    const { name } = await parseVerifier(key);
    devices.push({ device_id: name.replace(/^device-/, ""), device_key: key });
  }
  // The owner's signed device roster (docs/protocol.md, device roster): `safehold verify`
  // trusts only devices signed into it, so a bundle without it verifies nothing.
  const { statements } = await reader.api.json("GET", "/v1/roster", { auth: true });
  return {
    format: "safehold-bundle/v1",
    encounter_id: reader.id,
    encounter: { started_at: encounter.started_at, created_at: encounter.created_at,
      log_origin: encounter.log_origin },
    server: { url: location.origin, name: reader.m.server_name, server_key: reader.m.server_key,
      fingerprint: await fingerprint(reader.m.server_key) },
    devices,
    roster: statements,
    log: { tree_size: reader.checkpoint.size },
    fetched_at: fetchedAt,
    fetched_by: { kind: "contact", id: reader.m.contact_id },
  };
}

// encounter: the /v1/released entry (started_at, created_at, log_origin).
export async function bundleZip(reader, encounter, now = new Date()) {
  const files = [];
  const sizes = [];
  for (const c of reader.chunks.values()) {
    if (!c.bytes || !c.receipt) continue; // not fetched: verify names it as removed
    const base = `chunks/${c.stream}/${seqName(c.seq)}`;
    const receipt = { ...c.receipt };
    delete receipt.descriptor;
    files.push({ name: `${base}.age`, bytes: c.bytes },
      { name: `${base}.descriptor`, bytes: utf8(c.note) },
      { name: `${base}.receipt.json`, bytes: prettyJson(receipt) });
    sizes.push(receipt.tree_size);
  }
  const leaves = reader.leaves.map((data, index) => ({ data: toB64(data), index }));
  files.push({ name: "log/leaves.jsonl", bytes: jsonl(leaves) },
    { name: "log/checkpoint.note", bytes: utf8(reader.checkpoint.note) },
    { name: "log/consistency.jsonl", bytes: jsonl(await consistencyProofs(reader, sizes)) },
    { name: "access.jsonl", bytes: jsonl(reader.access.map((a) => ({ ...a }))) },
    { name: "manifest.json", bytes: prettyJson(await manifest(reader, encounter,
      now.toISOString())) });
  return storedZip(files, now);
}
