// IndexedDB: the contact's memberships. Secrets (age identity, contact signing key) are kept
// only inside an age file sealed to the passphrase; the rest (server key, owner's device keys,
// safety number) is public and kept in the clear so the page can show it before unlocking.

const DB = "safehold-contact";
const STORE = "invitations";
const CHECKPOINTS = "checkpoints"; // version 2: the largest checkpoint verified per encounter

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 2);
    req.onupgradeneeded = () => {
      const names = req.result.objectStoreNames;
      if (!names.contains(STORE)) req.result.createObjectStore(STORE, { keyPath: "invitation_id" });
      if (!names.contains(CHECKPOINTS)) req.result.createObjectStore(CHECKPOINTS, { keyPath: "key" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function run(mode, action, store = STORE) {
  return open().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const req = action(tx.objectStore(store));
    tx.oncomplete = () => { db.close(); resolve(req.result); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  }));
}

// record: {invitation_id, sealed_keys (armored age, scrypt), identity_file (armored),
// membership (null until the server accepted: the keys are kept before they are sent)}
export const saveRecord = (record) => run("readwrite", (s) => s.put(record));
export const loadRecords = () => run("readonly", (s) => s.getAll());
export const loadRecord = (invitationId) => run("readonly", (s) => s.get(invitationId));

// {key: "<server name> <encounter id>", size, root (hex), note, seen_at}: kept so that a log the
// server later serves smaller or different is refused (protocol/held.js).
const heldKey = (serverName, encounterId) => `${serverName} ${encounterId}`;
export const loadHeld = (serverName, encounterId) =>
  run("readonly", (s) => s.get(heldKey(serverName, encounterId)), CHECKPOINTS);
export const saveHeld = (serverName, encounterId, held) =>
  run("readwrite", (s) => s.put({ ...held, key: heldKey(serverName, encounterId) }), CHECKPOINTS);
