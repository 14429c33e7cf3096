// src/record/qr.js: the SVG it draws for an invitation link scans back to that link, decoded by
// an independent reader (jsQR) from a raster of the SVG's own path, quiet zone included.
import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import jsQR from "jsqr";

import { QUIET, qrModules, qrSvg } from "../src/record/qr.js";

// Just enough of document.createElementNS to keep the attributes and children qrSvg sets.
const doc = {
  createElementNS: (ns, tag) => ({
    ns, tag, attrs: {}, children: [],
    setAttribute(name, value) { this.attrs[name] = value; },
    append(...nodes) { this.children.push(...nodes); },
  }),
};

// Paints the SVG's black path ("M x y h w v1 h-w z" runs) on white, `scale` pixels a module.
function rasterise(svg, scale = 4) {
  const size = Number(svg.attrs.viewBox.split(" ")[2]);
  const px = size * scale;
  const rgba = new Uint8ClampedArray(px * px * 4).fill(255);
  const path = svg.children.find((c) => c.tag === "path");
  assert.equal(path.attrs.fill, "#000");
  const runs = [...path.attrs.d.matchAll(/M(\d+) (\d+)h(\d+)v1h-\3z/g)];
  assert.equal(runs.map((r) => r[0]).join(""), path.attrs.d, "the path is only whole-module runs");
  for (const [, x, y, w] of runs) {
    for (let row = Number(y) * scale; row < (Number(y) + 1) * scale; row++) {
      for (let col = Number(x) * scale; col < (Number(x) + Number(w)) * scale; col++) {
        rgba.fill(0, (row * px + col) * 4, (row * px + col) * 4 + 3);
      }
    }
  }
  return { rgba, px };
}

const LINK = "https://safehold.example.org/contact#invite=" +
  "3f9c2a7e51d04b8c9e6f0a1b2c3d4e5f.q8Zk3JxVbN1m4Rt7Yw0pLs9aQe2GhUi5Xc6Vb8Nm1Ko";

test("the invitation link's SVG decodes back to exactly that link", () => {
  const svg = qrSvg(LINK, "Invitation QR code", doc);
  assert.equal(svg.tag, "svg");
  assert.equal(svg.attrs.role, "img");
  assert.equal(svg.attrs["aria-label"], "Invitation QR code");
  const { rgba, px } = rasterise(svg);
  const found = jsQR(rgba, px, px);
  assert.ok(found, "jsQR found no QR code in the SVG");
  assert.equal(found.data, LINK);
});

test("the SVG is the matrix plus the quiet zone; a different link draws a different code", () => {
  const modules = qrModules(LINK);
  // version v has 17 + 4v modules a side; this ~120-byte link needs version 7 or more at level M
  assert.equal((modules.length - 17) % 4, 0);
  assert.ok(modules.length >= 17 + 4 * 7);
  const svg = qrSvg(LINK, "x", doc);
  assert.equal(svg.attrs.viewBox, `0 0 ${modules.length + 2 * QUIET} ${modules.length + 2 * QUIET}`);
  const other = jsQR(...(({ rgba, px }) => [rgba, px, px])(rasterise(qrSvg(LINK.replace("q8Z", "q9Z"), "x", doc))));
  assert.equal(other.data, LINK.replace("q8Z", "q9Z"));
});

test("a link that is not ASCII is refused rather than encoded wrongly", () => {
  assert.throws(() => qrModules("https://exämple.org/contact#invite=x"), /ASCII/);
});
