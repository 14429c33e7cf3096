// IndexedDB: the phone's state (docs/protocol.md C.1). `device` holds the settings and the
// device key as a non-extractable CryptoKey; `chunks` is the outbox (a sealed chunk is written
// here, durably, before any network is tried; acknowledged chunks stay, with their receipt); `encounters`, `invitations` (secrets of waiting invitations), `contacts`
// (pinned keys), `checkpoints` (verified sizes and roots per encounter), `actions` (alert/safe
// not sent yet).

const DB = "safehold-recorder";
const STORES = {
  device: "id", chunks: "key", encounters: "id", invitations: "invitation_id",
  contacts: "contact_id", checkpoints: "encounter", actions: "key",
};

let opened = null;

function open() {
  opened = opened || new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => {
      for (const [name, keyPath] of Object.entries(STORES)) {
        const store = req.result.createObjectStore(name, { keyPath });
        if (name === "chunks") store.createIndex("state", "state");
      }
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opened;
}

// One transaction; resolves only when it is committed ("strict": flushed to disk, so a chunk
// that was reported stored survives a crash of the browser).
export async function run(names, mode, action) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(names, mode, { durability: "strict" });
    const stores = Object.fromEntries([names].flat().map((n) => [n, tx.objectStore(n)]));
    let result;
    Promise.resolve(action(stores)).then((r) => { result = r; }, reject);
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });
}

const request = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

export const get = (name, key) => run(name, "readonly", (s) => request(s[name].get(key)));
export const all = (name) => run(name, "readonly", (s) => request(s[name].getAll()));
export const put = (name, value) => run(name, "readwrite", (s) => { s[name].put(value); });
export const remove = (name, key) => run(name, "readwrite", (s) => { s[name].delete(key); });
export const countByState = (state) => run("chunks", "readonly",
  (s) => request(s.chunks.index("state").count(IDBKeyRange.only(state))));
export const queuedKeys = () => run("chunks", "readonly",
  (s) => request(s.chunks.index("state").getAllKeys(IDBKeyRange.only("queued"))));
