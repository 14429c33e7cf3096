"""The signed contact set on the client: every device of the account seals to the same contacts.

A device that pinned a contact (its keys proven with the invitation secret) publishes the set of
contacts it seals to, signed with its device key (crypto/contact_set.py); the account's other
devices take a newer set only if a device of the verified roster signed it, so the server can
neither add a recipient nor swap one. Applying a newer set pins the contacts it lists that this
device does not know, and unpins those it dropped since the last set this device saw (revoked
on another device). A contact revoked here stays unpinned and is left out of the next set.

State: `contact_set.json` in the state folder, the last set seen or published (seq, contacts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from crypto.contact_set import ContactSet, open_contact_set, sign_contact_set
from crypto.roster import Roster, RosterError
from sync.api import ApiClient
from sync.device.localdb import immediate, open_database
from sync.device.state import OUTBOX, Settings, StateFolder
from sync.errors import ServerRefusal, UntrustedServer
from sync.upload.outbox import now_rfc3339

KNOWN_FILE = "contact_set.json"
FROM_SET = "(pinned on another device)"


def _load_known(state: StateFolder) -> tuple[int, tuple[tuple[str, str], ...]]:
    path = state.path / KNOWN_FILE
    if not path.exists():
        return -1, ()
    data = json.loads(path.read_text(encoding="utf-8"))
    return int(data["seq"]), tuple((str(c), str(r)) for c, r in data["contacts"])


def _save_known(state: StateFolder, found: ContactSet) -> None:
    path = state.path / KNOWN_FILE
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({"seq": found.seq, "contacts": found.contacts}) + "\n",
                    encoding="utf-8")
    os.replace(temp, path)


def served_set(api: ApiClient, roster: Roster, server: str) -> ContactSet | None:
    note = api.json("GET", "/v1/roster/contacts", auth=True).get("statement")
    if note is None:
        return None
    try:
        return open_contact_set(str(note), roster, server)
    except RosterError as exc:
        raise UntrustedServer(f"the server's contact set does not verify: {exc}; nothing "
                              "from it is sealed to")


def _apply(outbox: Path, newer: ContactSet, known: tuple[tuple[str, str], ...]) -> None:
    dropped = {cid for cid, _r in known} - {cid for cid, _r in newer.contacts}
    db = open_database(outbox)
    try:
        with immediate(db):
            for cid in dropped:
                db.execute("UPDATE contacts SET pinned_at = NULL WHERE id = ?", [cid])
            for cid, recipient in newer.contacts:
                db.execute("INSERT OR IGNORE INTO contacts (id, name, recipient, pinned_at) "
                           "VALUES (?, ?, ?, ?)", [cid, FROM_SET, recipient, now_rfc3339()])
    finally:
        db.conn.close()


def _pinned(outbox: Path) -> tuple[tuple[str, str], ...]:
    db = open_database(outbox)
    try:
        rows = db.execute("SELECT id, recipient FROM contacts WHERE pinned_at IS NOT NULL "
                          "ORDER BY id").fetchall()
    finally:
        db.conn.close()
    return tuple(sorted((str(cid), str(recipient)) for cid, recipient in rows))


def sync_contact_set(state: StateFolder, settings: Settings, api: ApiClient,
                     roster: Roster) -> list[str]:
    """Take a newer signed set, then publish ours if it differs; the recipients sealed to."""
    state.outbox().close()  # the contacts table exists
    outbox = state.path / OUTBOX
    latest = served_set(api, roster, settings.server_name)
    known_seq, known = _load_known(state)
    if latest is not None and latest.seq > known_seq:
        _apply(outbox, latest, known)
        _save_known(state, latest)
    desired = _pinned(outbox)
    if (latest is None and desired) or (latest is not None and desired != latest.contacts):
        seq = max(known_seq, latest.seq if latest else -1) + 1
        mine = ContactSet(settings.server_name, settings.account_id, seq, desired)
        note = sign_contact_set(mine, state.device_signing_key())
        try:
            api.json("PUT", "/v1/roster/contacts", auth=True, json_body={"statement": note})
        except ServerRefusal as exc:
            if exc.status != 409:
                raise
            return [r for _c, r in desired]  # another device published first: next time
        _save_known(state, mine)
    return [r for _c, r in desired]
