// The join form: make the keys here, check the owner's proof, send ours, keep the secrets
// sealed to the passphrase, show the safety number and offer the key file.

import { Api } from "../protocol/api.js";
import { identityFileText, newIdentity, sealWithPassphrase } from "../protocol/agefile.js";
import { joinInvitation } from "../protocol/contact_join.js";
import { generateSigningKey } from "../protocol/signing.js";
import { saveMembership } from "./store.js";
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

async function join(event, onJoined) {
  event.preventDefault();
  const code = $("code").value;
  const pass = $("join-pass").value;
  if (pass !== $("join-pass2").value) {
    status("The two passphrases are not the same.", "error");
    return;
  }
  const button = event.submitter || $("join-form").querySelector("button");
  button.disabled = true;
  try {
    status("Making your keys and checking the invitation…");
    const { identity, recipient } = await newIdentity();
    const { signingKey, verifierKey } = await generateSigningKey("contact");
    const membership = await joinInvitation(new Api(), code, location.host,
      { recipient, signingKey, contactKey: verifierKey });
    status("Protecting your key with your passphrase…");
    const identityFile = await sealWithPassphrase(identityFileText(identity, recipient), pass);
    const sealedKeys = await sealWithPassphrase(
      JSON.stringify({ identity, signing_key: signingKey }), pass);
    const record = { contact_id: membership.contact_id, membership,
      sealed_keys: sealedKeys, identity_file: identityFile };
    await saveMembership(record);
    $("join-form").reset();
    show("join", false);
    showJoined(record);
    status("You joined. Compare the safety number below.", "ok");
    onJoined(record, { identity, signingKey });
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
