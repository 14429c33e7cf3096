"""`safehold device link` and `device add`: a new device joins the account's signed roster.

1. The existing device (in the roster) asks the server for an add-device code, draws a 32-byte
   secret and shows `<server code>.<secret>.<genesis hash>` (crypto/device_link.py). It keeps
   the secret (outbox.db, table device_links) until the link is done or an hour has passed.
2. The new device makes its Ed25519 key, registers with the server code (POST /v1/devices),
   pins the genesis hash from the code and posts its proof over its key under the secret
   (POST /v1/roster/requests).
3. The existing device (while `device link` waits, or on its next `device sync`) checks each
   request's proof with its secrets; only a match is signed into the roster. It then publishes
   the signed contact set, so the new device seals to the same contacts.
4. The new device waits until the roster, verified from the pinned genesis, holds its key;
   then it takes the recovery recipient from the genesis (not from the server's word) and
   the contact set from the roster's devices.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import replace

import sqlite_utils

from crypto.device_link import LinkCode, link_proof, link_proof_matches, new_link_code
from crypto.errors import MalformedError
from crypto.roster import Roster, sign_statement
from sync.api import DEFAULT_TIMEOUT, ApiClient
from sync.device.account import client_for, join
from sync.device.localdb import immediate, open_database
from sync.device.roster import ensure_roster, owner_roster, remember
from sync.device.state import OUTBOX, Settings, StateFolder
from sync.errors import ServerRefusal, StateError, UntrustedServer
from sync.people.contact_set import sync_contact_set

SECRET_LIFETIME = 3600.0  # seconds a link secret is kept (the server code expires sooner)
POLL_SECONDS = 0.5


def _links_db(state: StateFolder) -> sqlite_utils.Database:
    state.outbox().close()
    db = open_database(state.path / OUTBOX)
    with immediate(db):
        db.execute("CREATE TABLE IF NOT EXISTS device_links (secret TEXT PRIMARY KEY, "
                   "created REAL NOT NULL)")
    return db


def _secrets(state: StateFolder) -> list[bytes]:
    db = _links_db(state)
    try:
        with immediate(db):
            db.execute("DELETE FROM device_links WHERE created < ?",
                       [time.time() - SECRET_LIFETIME])
        rows = db.execute("SELECT secret FROM device_links").fetchall()
    finally:
        db.conn.close()
    return [base64.b64decode(row[0]) for row in rows]


def _keep_secret(state: StateFolder, secret: bytes, keep: bool) -> None:
    db = _links_db(state)
    try:
        with immediate(db):
            text = base64.b64encode(secret).decode()
            if keep:
                db.execute("INSERT INTO device_links (secret, created) VALUES (?, ?)",
                           [text, time.time()])
            else:
                db.execute("DELETE FROM device_links WHERE secret = ?", [text])
    finally:
        db.conn.close()


def start_link(state: StateFolder, settings: Settings, api: ApiClient) -> LinkCode:
    """The code to type into the new device; its secret is kept here until used."""
    roster, settings = ensure_roster(state, settings, api)
    server_code = str(api.create_device_invitation()["code"])
    code = new_link_code(server_code, roster.genesis_hash)
    _keep_secret(state, code.secret, keep=True)
    return code


def complete_links(state: StateFolder, settings: Settings, api: ApiClient,
                   on_refused: Callable[[str], None] | None = None) -> list[str]:
    """Sign into the roster every new device whose proof matches a kept secret; their ids."""
    secrets = _secrets(state)
    if not secrets:
        return []
    roster, settings = ensure_roster(state, settings, api)
    added: list[str] = []
    for request in api.json("GET", "/v1/roster/requests", auth=True)["requests"]:
        key, device_id = str(request["device_key"]), str(request["device_id"])
        secret = next((s for s in secrets if link_proof_matches(
            s, settings.server_name, settings.account_id, key, request.get("proof"))), None)
        if secret is None:
            if on_refused is not None:
                on_refused(device_id)
            continue
        roster = _sign_in(state, settings, api, roster, key)
        settings = remember(state, settings, roster)
        _keep_secret(state, secret, keep=False)
        secrets.remove(secret)
        added.append(device_id)
    if added:
        sync_contact_set(state, settings, api, roster)
    return added


def _sign_in(state: StateFolder, settings: Settings, api: ApiClient, roster: Roster,
             device_key: str) -> Roster:
    for _attempt in range(3):  # another device may extend the roster at the same moment
        note = sign_statement(roster.next_statement(device_key), state.device_signing_key())
        try:
            api.json("POST", "/v1/roster", auth=True, json_body={"statement": note})
        except ServerRefusal as exc:
            if exc.code != "roster_conflict":
                raise
            roster = owner_roster(api, settings)
            if device_key in roster.devices:
                return roster
            continue
        return owner_roster(api, settings)
    raise UntrustedServer("the roster kept changing while this device signed an addition")


def add_this_device(state: StateFolder, url: str, code_text: str, wait: float,
                    timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> tuple[Settings, Roster]:
    """Register here with a link code and wait until the roster holds this device."""
    try:
        code = LinkCode.parse(code_text)
    except MalformedError as exc:
        raise StateError(str(exc))
    settings = state.load_settings()
    if settings is None or not settings.registered:
        settings = join(state, url, code.server_code, timeout)
    if settings.roster_genesis not in ("", code.genesis):
        raise StateError(f"{state.path} already belongs to another account's roster")
    settings = replace(settings, roster_genesis=code.genesis)
    state.save_settings(settings)
    api = client_for(state, settings, timeout)
    proof = link_proof(code.secret, settings.server_name, settings.account_id,
                       settings.device_key)
    api.json("POST", "/v1/roster/requests", auth=True, json_body={"proof": proof})
    roster = _wait_until_listed(api, settings, wait)
    if roster.recovery != settings.recovery_recipient:
        raise UntrustedServer("the server gave another recovery recipient than the one in the "
                              "account's signed roster; nothing was sealed yet")
    settings = remember(state, settings, roster)
    sync_contact_set(state, settings, api, roster)
    return settings, roster


def _wait_until_listed(api: ApiClient, settings: Settings, wait: float) -> Roster:
    deadline = time.monotonic() + wait
    while True:
        try:
            return owner_roster(api, settings)
        except UntrustedServer as exc:
            if "does not hold this device" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise StateError("the existing device has not signed this device into the "
                             "roster yet: keep `safehold device link` running there (or run "
                             "`safehold device sync` on it), then run this command again")
        time.sleep(POLL_SECONDS)


def roster_upkeep(state: StateFolder, settings: Settings,
                  api: ApiClient) -> tuple[list[str], list[str]]:
    """What every `device sync` does for the roster: verify it (pinning a larger one), sign in
    devices waiting with a matching link proof, and follow the signed contact set. Returns the
    devices added now, and the devices the server lists in the account outside the roster
    (a link not completed yet, or a device the operator put there: trusted by nobody)."""
    roster, settings = ensure_roster(state, settings, api)
    added = complete_links(state, settings, api)
    if added:
        roster = owner_roster(api, settings)
    sync_contact_set(state, settings, api, roster)
    listed = {str(d.get("device_id")): str(d.get("device_key"))
              for d in api.account().get("devices", [])}
    outside = sorted(d for d, key in listed.items() if key not in roster.devices)
    return added, outside
