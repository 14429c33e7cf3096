// The join form: check the owner's proof, make the keys here and keep them sealed to the
// passphrase BEFORE they are sent (a lost answer is retried with the same keys), send ours,
// show the safety number and offer the key file.

import { Api } from "../protocol/api.js";
import {
  identityFileText, newIdentity, openWithPassphrase, sealWithPassphrase,
} from "../protocol/agefile.js";
import { acceptInvitation, checkInvitation } from "../protocol/contact_join.js";
import { generateSigningKey, verifierKey } from "../protocol/signing.js";
import { loadRecord, saveRecord } from "./store.js";
import { $, downloadUrl, show, status } from "./ui.js";

// The invitation link carries the code in the fragment (#invite=<code>), which browsers never
// send to a server; it is removed from the address bar once read.
export function codeFromFragment() {
  const m = /^#(?:invite=)?([A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})$/.exec(location.hash);
  if (m) history.replaceState(null, "", location.pathname + location.search);
  return m ? m[1] : "";
}

export function showJoined(record) {
  $("safety").textContent = record.membership.safety_number;
  $("key-download").href = downloadUrl(record.identity_file, "text/plain");
  show("joined");
}

// This invitation's keys: the ones kept from an earlier attempt (opened with the passphrase
// chosen then), or new ones, sealed and stored before anything is sent.
async function keysFor(invitationId, pass) {
  const kept = await loadRecord(invitationId);
  if (kept) {
    let keys;
    try {
      keys = JSON.parse(await openWithPassphrase(kept.sealed_keys, pass));
    } catch {
      throw new Error("you started joining this invitation before: use the passphrase you chose then");
    }
    return { record: kept, keys };
  }
  status("Making your keys and protecting them with your passphrase…");
  const { identity, recipient } = await newIdentity();
  const { signingKey } = await generateSigningKey("contact");
  const keys = { identity, recipient, signing_key: signingKey };
  const record = {
    invitation_id: invitationId, membership: null,
    identity_file: await sealWithPassphrase(identityFileText(identity, recipient), pass),
    sealed_keys: await sealWithPassphrase(JSON.stringify(keys), pass),
  };
  await saveRecord(record);
  return { record, keys };
}

async function join(event, onJoined) {
  event.preventDefault();
  const pass = $("join-pass").value;
  if (pass !== $("join-pass2").value) {
    status("The two passphrases are not the same.", "error");
    return;
  }
  const button = event.submitter || $("join-form").querySelector("button");
  button.disabled = true;
  try {
    status("Checking the invitation…");
    const api = new Api();
    const checked = await checkInvitation(api, $("code").value, location.host);
    const { record, keys } = await keysFor(checked.code.invitationId, pass);
    status("Joining…");
    record.membership = await acceptInvitation(api, checked, { recipient: keys.recipient,
      signingKey: keys.signing_key, contactKey: await verifierKey(keys.signing_key) });
    await saveRecord(record);
    $("join-form").reset();
    show("join", false);
    showJoined(record);
    status("You joined. Compare the safety number below.", "ok");
    onJoined(record, keys);
  } catch (exc) {
    status(`Could not join: ${exc.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

export function setUpJoin(onJoined) {
  const fill = () => {
    const code = codeFromFragment();
    if (code) {
      $("code").value = code;
      show("join");
    }
  };
  fill();
  // An invitation link opened while the page is already open changes only the fragment.
  window.addEventListener("hashchange", fill);
  $("join-form").addEventListener("submit", (e) => join(e, onJoined));
}
