// The trusted contact page: join an invitation, unlock the kept keys, receive recordings.

import { openWithPassphrase } from "../protocol/agefile.js";
import { setUpJoin, showJoined } from "./join_view.js";
import { startReceiving } from "./receive_view.js";
import { loadRecords } from "./store.js";
import { $, show, status } from "./ui.js";

async function unlock(event, records) {
  event.preventDefault();
  const pass = $("unlock-pass").value;
  status("Opening your keys…");
  try {
    const opened = [];
    for (const record of records) {
      opened.push({ record, keys: JSON.parse(await openWithPassphrase(record.sealed_keys, pass)) });
    }
    $("unlock-form").reset();
    show("unlock", false);
    status("");
    startReceiving(opened);
  } catch {
    status("That passphrase does not open your keys.", "error");
  }
}

async function main() {
  // Invitations whose join never got the server's answer are finished by joining again.
  const records = (await loadRecords()).filter((r) => r.membership);
  setUpJoin((record, keys) => startReceiving([{ record, keys }]));
  if (!records.length || $("code").value) {
    show("join");
    return;
  }
  showJoined(records[records.length - 1]);
  show("unlock");
  $("unlock-form").addEventListener("submit", (e) => unlock(e, records));
}

main().catch((exc) => status(`This page could not start: ${exc.message}`, "error"));
