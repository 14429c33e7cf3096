// A small client for the Safehold HTTP API (docs/protocol.md §3) with the contact login
// (challenge signed by the contact key). Same-origin: the page is served by the server it talks to.

import { toB64 } from "./bytes.js";
import { signRaw } from "./signing.js";
import { contactLoginStatement, deviceLoginStatement } from "./statements.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function refusal(response) {
  let code = "http_error";
  let message = `the server answered ${response.status}`;
  try {
    const body = await response.json();
    code = body.error.code;
    message = body.error.message;
  } catch {
    // not our envelope (a proxy's page): keep the status line
  }
  return new ApiError(response.status, code, message);
}

export class Api {
  constructor(base = "", login = null) {
    this.base = base;
    this.login = login; // async (api) => token
    this.token = null; // a promise of the bearer token, while one is held
  }

  // `raw`: bytes sent as they are (a chunk upload); `body`: JSON.
  async request(method, path, { body, raw, auth = false, headers = {} } = {}) {
    for (let attempt = 0; ; attempt++) {
      const h = { ...headers };
      if (body !== undefined) h["Content-Type"] = "application/json";
      let token = null;
      if (auth) {
        // One login shared by the requests that need it at the same time.
        this.token = this.token || this.login(this).catch((exc) => {
          this.token = null;
          throw exc;
        });
        token = this.token;
        h.Authorization = `Bearer ${await token}`;
      }
      const response = await fetch(this.base + path, {
        method, headers: h,
        body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
      if (response.status === 401 && auth && attempt === 0) {
        if (this.token === token) this.token = null; // expired: log in again once
        continue;
      }
      if (!response.ok) throw await refusal(response);
      return response;
    }
  }

  async json(method, path, options) {
    return (await this.request(method, path, options)).json();
  }

  async bytes(path) {
    const response = await this.request("GET", path, { auth: true });
    return new Uint8Array(await response.arrayBuffer());
  }
}

// A token provider for a contact (Python: sync.contact_client.contact_login).
export function contactLogin(contactId, signingKey, serverName) {
  return async (api) => {
    const { challenge } = await api.json("POST", "/v1/auth/challenge", { body: { contact_id: contactId } });
    const signature = await signRaw(contactLoginStatement(serverName, contactId, challenge), signingKey);
    const { token } = await api.json("POST", "/v1/auth/token", {
      body: { contact_id: contactId, challenge, signature: toB64(signature) },
    });
    return token;
  };
}

// A token provider for a device (Python: sync.device.account.device_login); `signer` holds the
// device key (signing.js cryptoKeySigner).
export function deviceLogin(deviceId, signer, serverName) {
  return async (api) => {
    const { challenge } = await api.json("POST", "/v1/auth/challenge", { body: { device_id: deviceId } });
    const signature = await signer.sign(deviceLoginStatement(serverName, deviceId, challenge));
    const { token } = await api.json("POST", "/v1/auth/token", {
      body: { device_id: deviceId, challenge, signature: toB64(signature) },
    });
    return token;
  };
}
