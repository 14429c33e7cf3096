// Reproducible build of the browser clients into dist/, which the server serves as it is.
// `node build.mjs --check` builds into memory and exits 1 if dist/ differs (a stale commit).

import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

const check = process.argv.includes("--check");
const here = (p) => new URL(p, import.meta.url).pathname;
const pages = [{ name: "contact", dir: "src/contact" }, { name: "record", dir: "src/record" }];
let stale = [];

for (const page of pages) {
  const result = await build({
    entryPoints: [here(`${page.dir}/main.js`)], bundle: true, format: "esm", target: "es2022",
    minify: true, legalComments: "eof", write: false, outfile: here(`dist/${page.name}.js`),
    charset: "utf8",
  });
  const files = [[`${page.name}.js`, result.outputFiles[0].contents],
    [`${page.name}.html`, readFileSync(here(`${page.dir}/index.html`))],
    [`${page.name}.css`, readFileSync(here(`${page.dir}/${page.name}.css`))]];
  for (const [name, bytes] of files) {
    const target = here(`dist/${name}`);
    if (check) {
      let old = null;
      try { old = readFileSync(target); } catch { /* missing */ }
      if (!old || Buffer.compare(old, Buffer.from(bytes)) !== 0) stale.push(name);
    } else {
      mkdirSync(here("dist"), { recursive: true });
      writeFileSync(target, bytes);
    }
  }
}
// The recorder's web app files, served as they are (server/web/browser.py): the service worker
// (sw.js, registered by src/record/install.js), the web app manifest and its icons
// (drawn by scripts/record_icons.py).
const assets = [["src/record/sw.js", "record-sw.js"],
  ["src/record/manifest.webmanifest", "record.webmanifest"],
  ["src/record/icons/icon-192.png", "record-icon-192.png"],
  ["src/record/icons/icon-512.png", "record-icon-512.png"],
  ["src/record/icons/icon.svg", "record-icon.svg"]];
for (const [source, name] of assets) {
  const bytes = readFileSync(here(source));
  const target = here(`dist/${name}`);
  if (check) {
    let old = null;
    try { old = readFileSync(target); } catch { /* missing */ }
    if (!old || Buffer.compare(old, bytes) !== 0) stale.push(name);
  } else {
    writeFileSync(target, bytes);
  }
}
if (stale.length) {
  console.error(`web/dist is stale (${stale.join(", ")}): run \`npm run build\` in web/ and commit dist/`);
  process.exit(1);
}
