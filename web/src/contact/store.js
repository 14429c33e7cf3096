// IndexedDB: the contact's memberships. Secrets (age identity, contact signing key) are kept
// only inside an age file sealed to the passphrase; the rest (server key, owner's device keys,
// safety number) is public and kept in the clear so the page can show it before unlocking.

const DB = "safehold-contact";
const STORE = "invitations";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "invitation_id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function run(mode, action) {
  return open().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = action(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(req.result); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  }));
}

// record: {invitation_id, sealed_keys (armored age, scrypt), identity_file (armored),
// membership (null until the server accepted: the keys are kept before they are sent)}
export const saveRecord = (record) => run("readwrite", (s) => s.put(record));
export const loadRecords = () => run("readonly", (s) => s.getAll());
export const loadRecord = (invitationId) => run("readonly", (s) => s.get(invitationId));
