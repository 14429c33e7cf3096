// The exact strings a contact or a device signs for the server (Python: schemas/statements.py).

import { utf8 } from "./bytes.js";

const lines = (...ls) => {
  for (const l of ls) if (String(l).includes("\n")) throw new Error("newline in a statement");
  return utf8(ls.map((l) => l + "\n").join(""));
};

export const acceptInvitationStatement = (serverName, invitationId, ageRecipient, contactKey) =>
  lines("safehold-accept-invitation/v1", serverName, invitationId, ageRecipient, contactKey);

export const contactLoginStatement = (serverName, contactId, challenge) =>
  lines("safehold-login/v1", serverName, "contact-login", contactId, challenge);

export const registerStatement = (serverName, accountId, deviceId, recoveryRecipient) =>
  lines("safehold-register/v1", serverName, accountId, deviceId, recoveryRecipient);

export const deviceLoginStatement = (serverName, deviceId, challenge) =>
  lines("safehold-login/v1", serverName, "login", deviceId, challenge);

// The roster's genesis (docs/protocol.md "Device roster"): this device, with the recovery key.
export const rosterGenesisText = (serverName, accountId, deviceKey, recoveryRecipient) =>
  ["safehold.roster/v1", `server ${serverName}`, `account ${accountId}`, "seq 0", "prev -",
    `device ${deviceKey}`, `recovery ${recoveryRecipient}`].map((l) => l + "\n").join("");
