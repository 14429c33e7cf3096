// The exact strings a contact signs for the server (Python: schemas/statements.py).

import { utf8 } from "./bytes.js";

const lines = (...ls) => {
  for (const l of ls) if (String(l).includes("\n")) throw new Error("newline in a statement");
  return utf8(ls.map((l) => l + "\n").join(""));
};

export const acceptInvitationStatement = (serverName, invitationId, ageRecipient, contactKey) =>
  lines("safehold-accept-invitation/v1", serverName, invitationId, ageRecipient, contactKey);

export const contactLoginStatement = (serverName, contactId, challenge) =>
  lines("safehold-login/v1", serverName, "contact-login", contactId, challenge);
