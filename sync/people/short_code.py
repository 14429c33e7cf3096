"""Short read-aloud invitation codes: a transport for a long invitation, over SPAKE2.

Who waits for whom (two people on a phone call):
1. The owner's `device invite` makes the long invitation as before (sync/people/owner.py), then
   starts SPAKE2 as side A, posts its message (POST /v1/pake; the server allocates the number)
   and keeps the serialised SPAKE2 state and the payload (outbox.db, table pake_invites). It
   prints the code and waits (polling) for a contact to claim it.
2. The contact's `contact join CODE` reads the owner's message (GET /v1/nameplates/N), finishes
   SPAKE2 as side B and posts its message with its confirmation MAC (the one claim the server
   relays), then waits for the owner's answer.
3. The owner's device checks the confirmation. A match: it sends its own confirmation and the
   payload sealed under the PAKE key; a mismatch (a wrong guess, or a changed or replayed
   message): it burns the code (the server marks it, the contact is told) and says so.
   If `device invite` stopped waiting, `device contacts` does this step later.
4. The contact checks the owner's confirmation and opens the payload: the long invitation code,
   with which it joins as before (owner proof checked, contact proof sent).
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass

import sqlite_utils

from crypto.errors import CryptoError, MalformedError
from crypto.pake import (
    WORDS,
    ConfirmationFailed,
    OwnerPake,
    ShortCode,
    contact_pake,
    new_short_code,
)
from sync.api import ApiClient
from sync.device.localdb import immediate, open_database
from sync.device.state import OUTBOX, StateFolder
from sync.errors import ServerRefusal, StateError, SyncError, UntrustedServer

POLL_SECONDS = 0.5
PENDING, DONE, BURNED, EXPIRED = "pending", "done", "burned", "expired"
BURNED_PROBLEM = ("someone used the short code {code} with a wrong guess (or the server changed "
                  "the messages): it is void and nothing was sent; make a new invitation")

# This device records DONE in the same step as it answers; a server that says "done" first made
# the answer up (a replay): the code is treated as burned, nothing was sent.
FORGED_PROBLEM = ("the server says this short code was answered, but this device never answered "
                  "it (a replayed answer?): it is void and nothing was sent; make a new "
                  "invitation")


class CodeBurned(SyncError):
    """A short code was voided by a wrong guess (or by messages changed on the way)."""

    exit_code = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise UntrustedServer(f"the server sent a {what} that is not base64")


def payload_of(invitation_code: str, kind: str = "contact") -> bytes:
    """What the short code carries: the long code of an invitation (`kind` says which)."""
    return json.dumps({"v": 1, "kind": kind, "code": invitation_code},
                      separators=(",", ":")).encode("utf-8")


def _db(state: StateFolder) -> sqlite_utils.Database:
    state.outbox().close()
    db = open_database(state.path / OUTBOX)
    with immediate(db):
        db.execute("CREATE TABLE IF NOT EXISTS pake_invites (pake_id TEXT PRIMARY KEY, "
                   "code TEXT NOT NULL, spake TEXT NOT NULL, payload TEXT NOT NULL, "
                   "name TEXT NOT NULL, status TEXT NOT NULL, expires_at TEXT NOT NULL, "
                   "problem TEXT)")
    return db


@dataclass
class ShortInvite:
    pake_id: str
    code: str
    name: str
    status: str
    expires_at: str
    problem: str | None = None


def start(state: StateFolder, api: ApiClient, payload: bytes, name: str,
          lifetime: int) -> ShortInvite:
    """Allocate a nameplate for a new short code that will carry `payload`."""
    words = os.urandom(WORDS)  # the password is the words: the number comes back with the
    pake = OwnerPake(_words_code("1", words))  # allocation (the transcript binds it later)
    box = api.json("POST", "/v1/pake", auth=True, json_body={
        "owner_message": _b64(pake.message), "lifetime_seconds": lifetime})
    code = _words_code(str(box["nameplate"]), words)
    invite = ShortInvite(str(box["pake_id"]), code.text(), name, PENDING,
                         str(box["expires_at"]))
    db = _db(state)
    try:
        with immediate(db):
            db.execute("INSERT INTO pake_invites VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                       [invite.pake_id, invite.code, pake.state().decode("ascii"),
                        _b64(payload), name, PENDING, invite.expires_at])
    finally:
        db.conn.close()
    return invite


def _words_code(nameplate: str, words: bytes) -> ShortCode:
    return new_short_code(nameplate, lambda n: words[:n])


def invites(state: StateFolder) -> list[ShortInvite]:
    db = _db(state)
    try:
        rows = db.execute("SELECT pake_id, code, name, status, expires_at, problem "
                          "FROM pake_invites ORDER BY rowid").fetchall()
    finally:
        db.conn.close()
    return [ShortInvite(*row) for row in rows]


def _set(state: StateFolder, pake_id: str, status: str, problem: str | None = None) -> None:
    db = _db(state)
    try:
        with immediate(db):
            db.execute("UPDATE pake_invites SET status = ?, problem = ?, spake = '', "
                       "payload = '' WHERE pake_id = ?", [status, problem, pake_id])
    finally:
        db.conn.close()


def _secrets(state: StateFolder, pake_id: str) -> tuple[str, bytes, bytes]:
    db = _db(state)
    try:
        row = db.execute("SELECT code, spake, payload FROM pake_invites WHERE pake_id = ?",
                         [pake_id]).fetchone()
    finally:
        db.conn.close()
    return str(row[0]), str(row[1]).encode("ascii"), base64.b64decode(row[2])


def complete(state: StateFolder, api: ApiClient, invite: ShortInvite,
             now_iso: str) -> ShortInvite:
    """Step 3 for one pending short code: answer a claim, burn on a mismatch, note expiry."""
    if invite.status != PENDING:
        return invite
    try:
        box = api.json("GET", f"/v1/pake/{invite.pake_id}", auth=True)
    except ServerRefusal as exc:
        if exc.status != 404:
            raise
        box = {"status": "gone"}
    if box["status"] == "open":
        if invite.expires_at <= now_iso:  # the server's clock may lag; ours decides too
            _set(state, invite.pake_id, EXPIRED)
            invite.status = EXPIRED
        return invite
    if box["status"] != "claimed":  # burned by an earlier run, or not answered by us at all
        status = EXPIRED if box["status"] in ("gone", "expired") else BURNED
        problem = {"burned": BURNED_PROBLEM.format(code=invite.code),
                   "done": FORGED_PROBLEM}.get(str(box["status"]))
        _set(state, invite.pake_id, status, problem)
        invite.status, invite.problem = status, problem
        return invite
    return _answer(state, api, invite, box)


def _answer(state: StateFolder, api: ApiClient, invite: ShortInvite,
            box: dict[str, object]) -> ShortInvite:
    code_text, spake, payload = _secrets(state, invite.pake_id)
    code = ShortCode.parse(code_text)
    try:
        keys = OwnerPake(code, spake).finish(_unb64(box["contact_message"], "PAKE message"))
        keys.check_contact_confirm(_unb64(box["contact_confirm"], "confirmation"))
    except (CryptoError, MalformedError):
        api.json("POST", f"/v1/pake/{invite.pake_id}/reply", auth=True,
                 json_body={"outcome": "burned"})
        invite.status, invite.problem = BURNED, BURNED_PROBLEM.format(code=invite.code)
        _set(state, invite.pake_id, BURNED, invite.problem)
        return invite
    api.json("POST", f"/v1/pake/{invite.pake_id}/reply", auth=True, json_body={
        "outcome": "done", "owner_confirm": _b64(keys.owner_confirm()),
        "sealed": _b64(keys.seal(payload))})
    _set(state, invite.pake_id, DONE)
    invite.status = DONE
    return invite


def complete_all(state: StateFolder, api: ApiClient, now_iso: str) -> list[ShortInvite]:
    """This device's short codes not (yet) used rightly, pending ones answered where claimed
    (`device contacts`): pending, burned (a wrong guess) or expired."""
    answered = [complete(state, api, invite, now_iso) for invite in invites(state)]
    return [invite for invite in answered if invite.status != DONE]


def parse_short(text: str) -> ShortCode:
    try:
        return ShortCode.parse(text)
    except MalformedError as exc:
        raise StateError(f"that is not a short invitation code ({exc}); it looks like "
                         "417-guitarist-revenge")


def receive(api: ApiClient, code: ShortCode, wait: float) -> dict[str, str]:
    """The contact's side (steps 2 and 4): the payload the owner sealed, once confirmed."""
    box = api.json("GET", f"/v1/nameplates/{code.nameplate}")
    if box["status"] != "open":
        raise CodeBurned(f"the code {code.text()} was already used or voided; ask for a new one")
    try:
        msg_b, keys = contact_pake(code, _unb64(box["owner_message"], "PAKE message"))
    except (ConfirmationFailed, MalformedError) as exc:
        raise UntrustedServer(f"the owner's PAKE message is not usable ({exc}): the server "
                              "changed it; nothing was sent")
    api.json("POST", f"/v1/nameplates/{code.nameplate}/claim", json_body={
        "contact_message": _b64(msg_b), "contact_confirm": _b64(keys.contact_confirm())})
    deadline = time.monotonic() + wait
    while box["status"] in ("open", "claimed"):
        if time.monotonic() > deadline:
            raise SyncError("the owner's device did not answer in time; the code is used up: "
                            "ask for a new one (the owner's `safehold device invite` must be "
                            "running, or they run `safehold device contacts`)")
        time.sleep(POLL_SECONDS)
        box = api.json("GET", f"/v1/nameplates/{code.nameplate}")
    if box["status"] == "burned":
        raise CodeBurned(f"the owner's device did not accept the code {code.text()}: it was "
                         "mistyped (or the server changed the messages). It is now void and "
                         "the owner was told; ask for a new one")
    try:
        keys.check_owner_confirm(_unb64(box.get("owner_confirm"), "confirmation"))
        body = json.loads(keys.open(_unb64(box.get("sealed"), "sealed invitation")))
    except (ConfirmationFailed, ValueError) as exc:
        raise UntrustedServer(f"the owner's confirmation does not match the code ({exc}): the "
                              "server changed or replayed the PAKE messages; nothing was "
                              "accepted")
    if not isinstance(body, dict) or body.get("v") != 1 or not isinstance(body.get("code"), str):
        raise UntrustedServer("the sealed invitation is not one this version understands")
    return {"kind": str(body.get("kind")), "code": body["code"]}
