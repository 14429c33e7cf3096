// The recorder's service worker: once /record has been opened, it opens again with no network
// (a person may need it in a basement, or after the police jammed or cut the phone's data).
//
// Served from /web/record-sw.js with `Service-Worker-Allowed: /record`, registered with scope /record
// (install.js). On install it stores the page at its scope and every built file the page names
// (`/web/...` in src= and href=, found by reading the page itself, so the list never goes stale
// when the page changes), then the files it loads later under /web/. Each request for them goes
// to the network first - an online phone always gets the current page - and falls back to the
// stored copy when the network fails or takes longer than NETWORK_WAIT_MS. Nothing else is
// touched: the API (/v1/...), where the recording goes, is never cached or answered from here;
// the page's own outbox (IndexedDB) keeps what was recorded offline.

const CACHE = "safehold-record-v1";
const NETWORK_WAIT_MS = 3000;
const BUILT = "/web/";

function scopePage() {
  return new URL(self.registration.scope).pathname;
}

function ours(url) {
  return url.origin === self.location.origin &&
    (url.pathname === scopePage() || url.pathname.startsWith(BUILT));
}

// The built files a page names: src="/web/..." and href="/web/..." (and the manifest's icons).
function namedFiles(text) {
  const found = new Set();
  for (const m of text.matchAll(/(?:src|href)\s*=\s*["'](\/web\/[^"'?#]+)["']/g)) found.add(m[1]);
  for (const m of text.matchAll(/"src"\s*:\s*"(\/web\/[^"?#]+)"/g)) found.add(m[1]);
  return [...found];
}

async function store(cache, path) {
  const response = await fetch(path, { cache: "no-cache" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  await cache.put(path, response.clone());
  return response;
}

async function precache() {
  const cache = await caches.open(CACHE);
  const page = await store(cache, scopePage());
  const files = namedFiles(await page.text());
  const manifests = files.filter((f) => f.endsWith(".webmanifest"));
  await Promise.all(files.map((f) => store(cache, f)));
  for (const manifest of manifests) {
    const text = await (await cache.match(manifest)).text();
    await Promise.all(namedFiles(text).map((f) => store(cache, f)));
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

function timeout(ms) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error("network too slow")), ms));
}

async function networkFirst(request) {
  const url = new URL(request.url);
  const key = url.pathname; // one copy per file, whatever the query string
  const cache = await caches.open(CACHE);
  const fromNetwork = fetch(request).then(async (response) => {
    if (response.ok) await cache.put(key, response.clone());
    return response;
  });
  fromNetwork.catch(() => {}); // a failure is answered below; not an unhandled rejection
  try {
    return await Promise.race([fromNetwork, timeout(NETWORK_WAIT_MS)]);
  } catch (error) {
    const stored = await cache.match(key);
    if (stored) return stored;
    return fromNetwork; // nothing stored: the network's own answer or failure, however slow
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !ours(url)) return; // the network, untouched
  event.respondWith(networkFirst(event.request));
});
