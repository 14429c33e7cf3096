// src/record/install.js with stand-ins for document and navigator (the real browser is in
// tests/test_web_offline.py): the manifest is linked once, and a browser without service
// workers (or one that refuses the registration) gets the reason, never an exception.
import "./setup.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";

import { installOffline, MANIFEST, SCOPE, WORKER } from "../src/record/install.js";

function fakeDocument(links = []) {
  const head = { children: [...links], append(node) { this.children.push(node); } };
  return {
    head,
    createElement: () => ({}),
    querySelector: (sel) => head.children.find((n) => sel === 'link[rel="manifest"]' && n.rel === "manifest") || null,
  };
}

test("links the manifest once and registers the worker at /record", async () => {
  const doc = fakeDocument();
  const calls = [];
  const nav = { serviceWorker: { register: async (...args) => calls.push(args), ready: Promise.resolve({}) } };
  assert.deepEqual(await installOffline({ doc, nav }), { offline: true });
  await installOffline({ doc, nav });
  assert.deepEqual(doc.head.children, [{ rel: "manifest", href: MANIFEST }]);
  assert.deepEqual(calls[0], [WORKER, { scope: SCOPE, type: "classic" }]);
});

test("without service workers, or when refused, it says why and does not throw", async () => {
  assert.deepEqual(await installOffline({ doc: fakeDocument(), nav: {} }),
    { offline: false, why: "this browser has no service workers" });
  const nav = { serviceWorker: { register: async () => { throw new Error("SecurityError: refused"); } } };
  assert.deepEqual(await installOffline({ doc: fakeDocument(), nav }),
    { offline: false, why: "SecurityError: refused" });
});
