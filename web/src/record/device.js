// Setting up this phone as `safehold device register` does (docs/protocol.md C.2): keys and ids
// are made and kept first, then sent, so a set-up cut off by the network finishes with the same
// account when tried again. The device key never leaves WebCrypto (non-extractable); the
// recovery identity is kept only inside a passphrase-protected age file for the owner to save.

import { newIdentity, identityFileText, sealWithPassphrase } from "../protocol/agefile.js";
import { Api, deviceLogin } from "../protocol/api.js";
import { toB64 } from "../protocol/bytes.js";
import { cryptoKeySigner, fingerprint, generateDeviceKey, signNote } from "../protocol/signing.js";
import { registerStatement, rosterGenesisText } from "../protocol/statements.js";
import { get, put } from "./store.js";

const ME = "this-device";

export const loadDevice = () => get("device", ME);

// The server must call itself by the address this page was loaded from; its key is pinned.
export async function serverIdentity(api = new Api("")) {
  const info = await api.json("GET", "/v1/server");
  if (info.name !== location.host) {
    throw new Error(`the server calls itself ${info.name}, not ${location.host}`);
  }
  return { name: info.name, key: info.server_key, fingerprint: await fingerprint(info.server_key) };
}

// Every session starts by checking the server still presents the pinned key (C.2 2).
export async function checkPinnedServer(device, api) {
  const now = await serverIdentity(api);
  if (now.key !== device.server.key) {
    throw new Error("the server presents another key than the one this phone pinned: nothing " +
      "from it is trusted");
  }
}

export function deviceApi(device) {
  return new Api("", async (api) => deviceLogin(device.deviceId, await signerOf(device),
    device.server.name)(api));
}

export const signerOf = (device) => cryptoKeySigner(device.privateKey, device.verifierKey);

async function pendingDevice(passphrase) {
  const kept = await loadDevice();
  if (kept) return kept;
  const server = await serverIdentity();
  const deviceId = crypto.randomUUID();
  const { privateKey, verifierKey } = await generateDeviceKey(`device-${deviceId}`);
  const { identity, recipient } = await newIdentity();
  const device = {
    id: ME, deviceId, accountId: crypto.randomUUID(), privateKey, verifierKey,
    recoveryRecipient: recipient, server, registered: false, rosterPublished: false,
    recoveryFile: await sealWithPassphrase(identityFileText(identity, recipient), passphrase),
  };
  await put("device", device);
  return device;
}

export async function setUp(passphrase) {
  let device = await pendingDevice(passphrase);
  const api = new Api("");
  const signer = await signerOf(device);
  if (!device.registered) {
    const statement = registerStatement(device.server.name, device.accountId, device.deviceId,
      device.recoveryRecipient);
    await api.json("POST", "/v1/accounts", { body: {
      account_id: device.accountId, device_id: device.deviceId, device_key: device.verifierKey,
      recovery_recipient: device.recoveryRecipient, signature: toB64(await signer.sign(statement)),
    } });
    device = { ...device, registered: true };
    await put("device", device);
  }
  if (!device.rosterPublished) {
    const note = await signNote(rosterGenesisText(device.server.name, device.accountId,
      device.verifierKey, device.recoveryRecipient), signer);
    await deviceApi(device).json("POST", "/v1/roster", { auth: true, body: { statement: note } });
    device = { ...device, rosterPublished: true };
    await put("device", device);
  }
  return device;
}
