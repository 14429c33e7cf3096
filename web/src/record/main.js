// The recorder page (/record): set up, invite and pin contacts, record, upload, alert/safe.
// One big control; every other button is one tap.

import { $, downloadUrl, el, show, status } from "../contact/ui.js";
import { utf8 } from "../protocol/bytes.js";
import { locationEntry, noteEntry } from "../protocol/eventlog.js";
import { Recording } from "./capture.js";
import {
  invite, pinnedContacts, refreshContacts, refusedInvitations, waitingInvitations,
} from "./contacts.js";
import { loadDevice, setUp, signerOf } from "./device.js";
import { installOffline } from "./install.js";
import { qrSvg } from "./qr.js";
import { countByState } from "./store.js";
import { Uploader, queueAction } from "./uploader.js";

let device = null;
let uploader = null;
let recording = null;
let lastEncounter = null;
let lastRecording = null; // notes after the stop go to its addenda

function uploadStatus(text, kind = "") {
  $("upload").textContent = text;
  $("upload").className = kind;
}

async function onUploadStatus(s) {
  const acked = await countByState("acknowledged");
  if (s.kind === "offline") {
    uploadStatus(`No connection to the server (${s.message}). ${s.waiting} pieces are kept ` +
      "safe on this phone and will be sent as soon as it answers.", "error");
  } else if (s.kind === "untrusted" || s.kind === "refused") {
    uploadStatus(`STOPPED: ${s.message}`, "error");
  } else if (s.kind === "chunk-refused") {
    uploadStatus(`The server refused a piece (kept on this phone): ${s.message}`, "error");
  } else if (s.kind === "action-sent") {
    status(s.action === "alert" ? "Your contacts were alerted." : "Marked safe.");
  } else if (s.kind === "sending") {
    uploadStatus(`Sending: ${s.waiting} pieces waiting, ${acked} on the server.`);
  } else if (s.kind === "idle" && !s.waiting) {
    const refused = await countByState("refused");
    if (refused) {
      uploadStatus(`${acked} pieces are on the server; the server refused ${refused}, which are ` +
        "kept on this phone.", "error");
    } else {
      uploadStatus(`Everything recorded is on the server (${acked} pieces).`);
    }
  }
}

async function showContacts(contacts) {
  const refused = await refusedInvitations();
  $("contacts").replaceChildren(...contacts.map((c) => el("li", {},
    el("strong", { text: c.name }), ` (${c.policy}) safety number: `,
    el("span", { "aria-label": `Safety number of ${c.name}`, text: c.safety }))),
  ...refused.map((i) => el("li", { class: "error" }, el("strong", { text: i.name }),
    `: REFUSED: ${i.problem}`)));
  show("no-contacts", !contacts.length);
}

async function checkContacts() {
  try {
    await showContacts(await refreshContacts(device));
  } catch (exc) {
    status(`Could not check your contacts: ${exc.message}`, "error");
  }
}

// While an invitation waits, look for its contact now and then (as `device sync` does).
async function pollContacts() {
  if ((await waitingInvitations()).length) await checkContacts();
  setTimeout(pollContacts, 10_000);
}

function showDevice() {
  show("setup", false);
  for (const id of ["recorder", "people", "keys"]) show(id);
  $("fingerprint").textContent = device.server.fingerprint;
  $("recovery").href = downloadUrl(utf8(device.recoveryFile), "text/plain");
  uploader = new Uploader(device, (s) => onUploadStatus(s));
  uploader.kick(); // whatever a crash or a lost network left in the outbox
  pinnedContacts().then(showContacts);
  pollContacts();
}

async function onSetUp(event) {
  event.preventDefault();
  const pass = $("setup-pass").value;
  if (pass !== $("setup-pass2").value) return status("The two passphrases differ.", "error");
  status("Setting up this phone…");
  try {
    device = await setUp(pass);
    $("setup-form").reset();
    status("This phone is set up. Invite a trusted contact next.");
    showDevice();
  } catch (exc) {
    status(`Set-up did not finish (${exc.message}). Try again: the same keys are used.`, "error");
  }
}

async function onInvite(event) {
  event.preventDefault();
  try {
    const { code, link } = await invite(device, $("invite-name").value.trim(), $("invite-policy").value);
    $("invitation-code").value = code;
    $("invitation-link").href = link;
    $("invitation-qr").replaceChildren(qrSvg(link, "Invitation QR code"));
    show("invitation");
    status("Invitation made. It works once, for 7 days.");
  } catch (exc) {
    status(`No invitation was made: ${exc.message}`, "error");
  }
}

async function toggleRecording() {
  const button = $("record");
  if (recording) {
    button.disabled = true;
    await recording.stop();
    lastRecording = recording;
    recording = null;
    button.textContent = "Start recording";
    button.classList.remove("recording");
    button.disabled = false;
    status("Recording stopped.");
    return uploader.kick();
  }
  const contacts = await pinnedContacts();
  const recipients = [...contacts.map((c) => c.age_recipient), device.recoveryRecipient];
  recording = new Recording({ signer: await signerOf(device), recipients,
    onChunk: () => uploader.kick(),
    onError: (exc) => status(`A piece could not be sealed: ${exc.message}`, "error") });
  try {
    lastEncounter = await recording.start($("kind").querySelector("input:checked").value === "video");
  } catch (exc) {
    recording = null;
    return status(`Could not start recording: ${exc.message}`, "error");
  }
  $("encounter").textContent = lastEncounter;
  show("current");
  button.textContent = "Stop recording";
  button.classList.add("recording");
  status(contacts.length ? "Recording." : "Recording. No trusted contact yet: only your recovery key opens it.");
}

async function action(kind) {
  if (!lastEncounter) return status("Start a recording first.", "error");
  await queueAction(lastEncounter, kind);
  status(kind === "alert" ? "Alerting your contacts…" : "Marking you safe…");
  uploader.kick();
}

// A note or a location goes into the running recording's event log (`make` builds the entry
// and may refuse it: an empty or overlong note, impossible coordinates).
function addLogEntry(make) {
  if (!recording && !lastRecording) return status("Start a recording first.", "error");
  let entry;
  try {
    entry = make();
  } catch (exc) {
    return status(`Not added: ${exc.message}`, "error");
  }
  const added = recording ? recording.log(entry) : lastRecording.addendum(entry);
  return added.then(() => status("Added to the recording."));
}

function locate() {
  if (!recording && !lastRecording) return status("Start a recording first.", "error");
  navigator.geolocation.getCurrentPosition(
    (p) => addLogEntry(() => locationEntry({ lat: p.coords.latitude, lon: p.coords.longitude,
      accuracy: p.coords.accuracy ?? null })),
    (err) => status(`No location: ${err.message}`, "error"), { enableHighAccuracy: true, timeout: 15000 });
}

async function main() {
  $("setup-form").addEventListener("submit", onSetUp);
  $("invite-form").addEventListener("submit", onInvite);
  $("check-contacts").addEventListener("click", checkContacts);
  $("record").addEventListener("click", toggleRecording);
  $("alert").addEventListener("click", () => action("alert"));
  $("safe").addEventListener("click", () => action("safe"));
  $("locate").addEventListener("click", locate);
  $("note-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("note").value.trim();
    if (text) addLogEntry(() => noteEntry({ text }));
    $("note").value = "";
  });
  window.addEventListener("online", () => uploader && uploader.kick());
  installOffline(); // the page opens without a network once loaded (never in the way)
  device = await loadDevice();
  if (device && device.registered && device.rosterPublished) return showDevice();
  show("setup");
}

main().catch((exc) => status(`This page could not start: ${exc.message}`, "error"));
