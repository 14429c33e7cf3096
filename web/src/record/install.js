// Makes /record an installable web app that opens offline once loaded: links the web app
// manifest (if the page's HTML does not already) and registers the service worker (sw.js,
// served as /web/record-sw.js, allowed the scope /record by the server's
// Service-Worker-Allowed header). The recorder page calls installOffline() once at start.
// Never in the way of recording: without service workers (an old browser, a private window
// that refuses them) the page works as before, only not offline; the reason is returned.

export const MANIFEST = "/web/record.webmanifest";
export const WORKER = "/web/record-sw.js";
export const SCOPE = "/record";

export function linkManifest(doc = document) {
  if (doc.querySelector('link[rel="manifest"]')) return;
  const link = doc.createElement("link");
  link.rel = "manifest";
  link.href = MANIFEST;
  doc.head.append(link);
}

// Resolves to { offline: true } once the worker is active (the page and its files are stored),
// or { offline: false, why } - it never rejects.
export async function installOffline({ scope = SCOPE, doc = document, nav = navigator } = {}) {
  linkManifest(doc);
  if (!nav.serviceWorker) return { offline: false, why: "this browser has no service workers" };
  try {
    await nav.serviceWorker.register(WORKER, { scope, type: "classic" });
    await nav.serviceWorker.ready;
    return { offline: true };
  } catch (error) {
    return { offline: false, why: error.message };
  }
}
