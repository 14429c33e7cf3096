// The worked examples of docs/protocol.md, read from the document itself (as the Python tests
// read them), so the JS and Python implementations are held to the same bytes.

import { readFileSync } from "node:fs";

const doc = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");

export function example(name) {
  const marker = `<!-- example: ${name} -->\n\`\`\`\n`;
  const start = doc.indexOf(marker);
  if (start < 0) throw new Error(`no example ${name} in docs/protocol.md`);
  const body = start + marker.length;
  return doc.slice(body, doc.indexOf("```\n", body));
}

export function near(marker, pattern) {
  const at = doc.indexOf(marker);
  if (at < 0) throw new Error(`no ${marker} in docs/protocol.md`);
  const m = pattern.exec(doc.slice(at));
  if (!m) throw new Error(`no ${pattern} after ${marker}`);
  return m[1];
}
