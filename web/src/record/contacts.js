// Trusted contacts from this phone (Python: sync/people/owner.py): make an invitation (its
// secret kept here first, never sent), then verify and pin each contact who joined by
// recomputing its proof from the secret. Only pinned keys are ever sealed to.

import { formatTime } from "../protocol/descriptor.js";
import {
  contactProofMatches, contactSafetyBytes, newCode, ownerProof, ownerSafetyBytes,
} from "../protocol/invitation.js";
import { safetyNumber } from "../protocol/safety.js";
import { deviceApi } from "./device.js";
import { all, put } from "./store.js";

const DAYS = 7;

export async function invite(device, name, policy) {
  const code = newCode();
  const terms = {
    invitation_id: code.invitationId, server: device.server.name, account_id: device.accountId,
    recovery_recipient: device.recoveryRecipient, device_keys: [device.verifierKey], policy,
    check_in_minutes: policy === "check_in" ? 30 : null,
    expires_at: formatTime(new Date(Date.now() + DAYS * 86400_000)),
  };
  await put("invitations", { invitation_id: code.invitationId, secret: code.secret, terms, name,
    state: "waiting" });
  await deviceApi(device).json("POST", "/v1/contacts/invitations", { auth: true, body: {
    invitation_id: code.invitationId, name, policy, check_in_minutes: terms.check_in_minutes,
    expires_at: terms.expires_at, recovery_recipient: terms.recovery_recipient,
    device_keys: terms.device_keys, owner_proof: await ownerProof(code.secret, terms),
  } });
  return { code: code.text, link: `${location.origin}/contact#invite=${code.text}` };
}

// Pins every contact who joined one of this phone's waiting invitations with the proven keys;
// refuses (and revokes) a contact whose keys the server substituted. Returns the pinned list.
export async function refreshContacts(device) {
  const api = deviceApi(device);
  const waiting = await waitingInvitations();
  if (waiting.length) {
    const { contacts } = await api.json("GET", "/v1/contacts", { auth: true });
    for (const invitation of waiting) {
      const contact = contacts.find((c) => c.invitation_id === invitation.invitation_id);
      if (contact && contact.accepted_at) await settle(api, invitation, contact);
    }
  }
  return pinnedContacts();
}

async function settle(api, invitation, contact) {
  const ok = await contactProofMatches(invitation.secret, invitation.invitation_id,
    contact.age_recipient, contact.contact_key, contact.proof);
  if (!ok || contact.status === "revoked") {
    await put("invitations", { ...invitation, secret: null, state: "refused",
      problem: ok ? "revoked before it was verified" : "the keys the server holds for this " +
        "contact do not match the invitation: they were substituted; nothing is sealed to them" });
    if (contact.status !== "revoked") {
      await api.json("DELETE", `/v1/contacts/${contact.contact_id}`, { auth: true });
    }
    return;
  }
  const safety = await safetyNumber(ownerSafetyBytes(invitation.terms),
    contactSafetyBytes(contact.age_recipient, contact.contact_key));
  const pinned = (await all("contacts")).length;
  await put("contacts", { contact_id: contact.contact_id, name: contact.name,
    policy: contact.policy, age_recipient: contact.age_recipient,
    contact_key: contact.contact_key, safety, order: pinned });
  await put("invitations", { ...invitation, secret: null, state: "pinned" });
  await api.json("POST", `/v1/contacts/${contact.contact_id}/confirm`, { auth: true });
}

export async function pinnedContacts() {
  return (await all("contacts")).sort((a, b) => a.order - b.order);
}

const inState = (state) => async () => (await all("invitations")).filter((i) => i.state === state);
export const refusedInvitations = inState("refused");
export const waitingInvitations = inState("waiting");
