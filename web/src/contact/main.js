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
    // Each invitation may have its own passphrase: open those this one opens.
    const opened = [];
    for (const record of records) {
      try {
        opened.push({ record, keys: JSON.parse(await openWithPassphrase(record.sealed_keys, pass)) });
      } catch {
        // sealed to another passphrase
      }
    }
    if (!opened.length) throw new Error("no keys opened");
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
  $("another").addEventListener("click", () => {
    show("join");
    $("code").focus();
  });
  if (!records.length || $("code").value) {
    show("join");
    return;
  }
  showJoined(records[records.length - 1]);
  show("unlock");
  $("unlock-form").addEventListener("submit", (e) => unlock(e, records));
}

main().catch((exc) => status(`This page could not start: ${exc.message}`, "error"));
