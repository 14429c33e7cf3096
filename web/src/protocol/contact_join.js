// A trusted contact accepts an invitation exactly as `safehold contact join` does
// (Python: sync/contact_client.py): check the server, check the owner's proof over what the
// server shows BEFORE sending anything, then send our keys with our proof and signature.

import { toB64 } from "./bytes.js";
import {
  contactProof, contactSafetyBytes, ownerSafetyBytes, parseCode, verifyOwnerProof,
} from "./invitation.js";
import { safetyNumber } from "./safety.js";
import { acceptInvitationStatement } from "./statements.js";
import { signRaw } from "./signing.js";

export class UntrustedServer extends Error {}

// GET /v1/server; its name must be the host[:port] we reached it at (§C.2).
export async function serverInfo(api, expectedName) {
  const info = await api.json("GET", "/v1/server");
  if (info.name !== expectedName) {
    throw new UntrustedServer(`the server calls itself ${info.name}, not ${expectedName}`);
  }
  return info;
}

export async function provenTerms(api, code, serverName) {
  const shown = await api.json("GET", `/v1/invitations/${code.invitationId}`);
  try {
    if (shown.invitation_id !== code.invitationId) throw new Error("another invitation id");
    await verifyOwnerProof(code.secret, shown);
  } catch (exc) {
    throw new UntrustedServer("the invitation the server shows does not match the code's " +
      `secret (${exc.message}): the owner's keys or terms were changed; nothing was sent`);
  }
  if (shown.server !== serverName) {
    throw new UntrustedServer(`the invitation was made for server ${shown.server}, not ${serverName}`);
  }
  return shown;
}

// Step 1: the invitation the server shows, proven by the code's secret. Nothing is sent yet.
export async function checkInvitation(api, codeText, serverName) {
  const code = parseCode(codeText);
  const server = await serverInfo(api, serverName);
  const terms = await provenTerms(api, code, serverName);
  return { code, server, terms, serverName };
}

// Step 2 (keys: {recipient (age1…), signingKey, contactKey (verifier)}, already kept safe by
// the caller, so a lost answer can be retried with the same keys: the server answers an
// identical accept again with 200). Returns the membership record.
export async function acceptInvitation(api, checked, keys, notify = {}) {
  const { code, server, terms, serverName } = checked;
  const statement = acceptInvitationStatement(serverName, code.invitationId, keys.recipient,
    keys.contactKey);
  const body = {
    age_recipient: keys.recipient,
    contact_key: keys.contactKey,
    proof: await contactProof(code.secret, code.invitationId, keys.recipient, keys.contactKey),
    signature: toB64(await signRaw(statement, keys.signingKey)),
  };
  if (notify.email) body.notify_email = notify.email;
  const accepted = await api.json("POST", `/v1/invitations/${code.invitationId}/accept`, { body });
  return {
    server_name: serverName,
    server_key: server.server_key,
    server_fingerprint: server.fingerprint,
    invitation_id: code.invitationId,
    contact_id: accepted.contact_id,
    account_id: terms.account_id,
    owner_recipient: terms.recovery_recipient,
    owner_device_keys: [...new Set(terms.device_keys)].sort(),
    policy: terms.policy,
    check_in_minutes: terms.check_in_minutes,
    age_recipient: keys.recipient,
    contact_key: keys.contactKey,
    accepted_at: accepted.accepted_at,
    safety_number: await safetyNumber(ownerSafetyBytes(terms),
      contactSafetyBytes(keys.recipient, keys.contactKey)),
  };
}
