"""A hostile operator against the device roster, done as an operator would do it.

The operator has the database and the API: it inserts a device row into the owner's account
(SQL), logs in as that device through the ordinary API and uploads a forged `video` stream
sealed to the owner's recovery recipient and the contact's key. The owner's and the contact's
`fetch` must end with exit 1 naming the injected device, `verify` likewise, and `decrypt` must
write nothing. Then the operator goes for the roster itself: a statement signed by a key outside
the chain, a whole replacement chain, a broken link, a rolled-back roster.

Real parts throughout: `safehold serve` on loopback, the real CLIs as subprocesses, the real
SQLite file of the server.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from bundlekit import run_cli
from helpers import DEVICE_TIME, Device, ServerProcess, registered_device

from crypto import age
from crypto.contact_set import ContactSet, sign_contact_set
from crypto.descriptor import describe_chunk, sign_descriptor
from crypto.roster import RosterStatement, genesis_statement, sign_statement, statement_hash
from crypto.slot import Slot
from tests.synckit import cli

pytestmark = pytest.mark.sqlite_only("edits the server's SQLite file as an operator would")


ENV = {"SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}
FORGED_VIDEO = b"FORGED VIDEO " * 50


def safehold(*args: str | Path) -> tuple[int, str]:
    done = run_cli(*args, env=ENV)
    return done.returncode, done.stdout + done.stderr


@dataclass
class Owner:
    phone: Path
    mom: Path
    mom_key: Path
    encounter: str
    settings: dict[str, str]


def database(server: ServerProcess) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "safehold.sqlite3")


def owner_with_contact(server: ServerProcess, tmp_path: Path) -> Owner:
    """A phone that invited Mom (immediate), pinned her, and recorded a short audio stream."""
    phone, mom = tmp_path / "phone", tmp_path / "mom"
    assert cli(phone, "register", "--server", server.url).returncode == 0
    invited = cli(phone, "invite", "--long", "--name", "Mom", "--policy", "immediate")
    assert invited.returncode == 0, invited.stderr
    assert safehold("keygen", "-o", tmp_path / "mom.key")[0] == 0
    code, out = safehold("contact", "join", invited.stdout.strip(), "--server", server.url,
                         "--identity", tmp_path / "mom.key", "--state", mom)
    assert code == 0, out
    assert cli(phone, "contacts").returncode == 0  # verify and pin Mom's keys
    (tmp_path / "a.bin").write_bytes(os.urandom(3000))
    recorded = cli(phone, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "1000")
    assert recorded.returncode == 0, recorded.stderr
    settings = json.loads((phone / "settings.json").read_text())
    return Owner(phone, mom, tmp_path / "mom.key", recorded.stdout.strip(), settings)


def inject_device(server: ServerProcess, account_id: str) -> Device:
    """The operator's device, inserted straight into the owner's account, then logged in."""
    forged = Device(server.url, server.name, account_id=account_id)
    with database(server) as db:
        db.execute("INSERT INTO devices (device_id, account_id, device_key, created_at) "
                   "VALUES (?, ?, ?, ?)",
                   [forged.device_id, account_id, forged.device_key, "2026-11-28T03:00:00.000Z"])
    db.close()
    return forged.login()


def forged_upload(forged: Device, encounter: str, recipients: list[str]) -> None:
    slot = Slot(encounter, "video", 0, True)
    body = age.encrypt(FORGED_VIDEO, recipients, slot=slot)
    note = sign_descriptor(describe_chunk(body, slot, DEVICE_TIME), forged.signing_key)
    response = forged.put_chunk(encounter, "video", 0, body, note)
    assert response.status_code == 201, response.text  # the server takes it: it is a "device"


@pytest.fixture
def attacked(live_server: ServerProcess, tmp_path: Path) -> tuple[Owner, Device]:
    owner = owner_with_contact(live_server, tmp_path)
    forged = inject_device(live_server, owner.settings["account_id"])
    # Sealed to the owner's recovery recipient and to Mom: both could open the forgery.
    recipients = [owner.settings["recovery_recipient"]]
    recipients += [age.recipient_of(line) for line in owner.mom_key.read_text().splitlines()
                   if line.startswith("AGE-SECRET-KEY-")]
    forged_upload(forged, owner.encounter, recipients)
    return owner, forged


def test_an_injected_device_is_named_as_forged_to_the_owner(attacked, tmp_path: Path) -> None:
    owner, forged = attacked
    bundle = tmp_path / "owner-bundle"
    code, out = safehold("fetch", owner.encounter, "-o", bundle, "--state", owner.phone)
    assert code == 1, out
    assert forged.device_id in out and "FORGED" in out
    assert "OK: nothing was altered" not in out

    code, out = safehold("verify", bundle)
    assert code == 1 and f"device-{forged.device_id}" in out, out
    # fetch never downloaded the forged chunk; its descriptor in the log is named as forged
    assert "chunk descriptor does not verify: FORGED: signed by device-" in out
    # The genuine audio is still there and checks out: only the forgery is refused.
    assert "ERROR      chunks/audio" not in out

    decrypted = tmp_path / "owner-out"
    code, out = safehold("decrypt", bundle, "-i", owner.phone / "recovery.key", "-o", decrypted)
    assert code == 1, out
    assert not decrypted.exists()
    assert not list(tmp_path.glob(".owner-out.partial-*"))  # no staging folder left behind
    # The phone's next sync tells the owner that the server lists a device nobody signed in.
    synced = cli(owner.phone, "sync")
    assert synced.returncode == 0, synced.stderr
    assert f"the server lists device {forged.device_id} in your account, but no device of " \
           "yours signed it into the roster" in synced.stderr


def test_an_injected_device_is_named_as_forged_to_a_contact(attacked, tmp_path: Path) -> None:
    owner, forged = attacked
    bundle = tmp_path / "mom-bundle"
    code, out = safehold("fetch", owner.encounter, "-o", bundle, "--state", owner.mom)
    assert code == 1, out
    assert forged.device_id in out and "OK: nothing was altered" not in out
    decrypted = tmp_path / "mom-out"
    code, out = safehold("decrypt", bundle, "-i", owner.mom_key, "-o", decrypted)
    assert code == 1, out
    assert not decrypted.exists()


def _roster_rows(server: ServerProcess, account_id: str) -> list[tuple[int, str]]:
    with database(server) as db:
        rows = db.execute("SELECT seq, note FROM roster_statements WHERE account_id = ? "
                          "ORDER BY seq", [account_id]).fetchall()
    db.close()
    return [(int(seq), str(note)) for seq, note in rows]


def _insert_statement(server: ServerProcess, account_id: str, seq: int, note: str) -> None:
    with database(server) as db:
        db.execute("INSERT INTO roster_statements (account_id, seq, note, hash, created_at) "
                   "VALUES (?, ?, ?, ?, ?)",
                   [account_id, seq, note, statement_hash(note), "2026-11-28T03:00:00.000Z"])
    db.close()


def _fetch_both(owner: Owner, tmp_path: Path, label: str) -> tuple[str, str]:
    results = []
    for who, state in (("owner", owner.phone), ("mom", owner.mom)):
        code, out = safehold("fetch", owner.encounter, "-o", tmp_path / f"{label}-{who}",
                             "--state", state)
        assert code == 1, out
        assert "roster" in out
        assert not (tmp_path / f"{label}-{who}" / "manifest.json").exists()
        assert not list((tmp_path / f"{label}-{who}").glob("chunks/*/*"))  # nothing downloaded
        results.append(out)
    return results[0], results[1]


def test_a_roster_statement_signed_outside_the_chain_is_refused(attacked, live_server,
                                                                tmp_path: Path) -> None:
    """The operator adds its device to the roster, signing the addition with that device."""
    owner, forged = attacked
    account = owner.settings["account_id"]
    rows = _roster_rows(live_server, account)
    assert len(rows) == 1  # the phone's genesis, published at registration
    addition = RosterStatement(live_server.name, account, 1, statement_hash(rows[0][1]),
                               forged.device_key, None)
    _insert_statement(live_server, account, 1, sign_statement(addition, forged.signing_key))
    owner_out, mom_out = _fetch_both(owner, tmp_path, "outside")
    for out in (owner_out, mom_out):
        assert "roster statement 1" in out and "not signed by a device already in the roster" in out


def test_a_replaced_roster_is_refused(attacked, live_server, tmp_path: Path) -> None:
    """The operator rebuilds the chain from a genesis of its own that then adds the phone."""
    owner, forged = attacked
    account = owner.settings["account_id"]
    genesis = sign_statement(genesis_statement(live_server.name, account, forged.device_key,
                                               owner.settings["recovery_recipient"]),
                             forged.signing_key)
    phone = RosterStatement(live_server.name, account, 1, statement_hash(genesis),
                            owner.settings["device_key"], None)
    with database(live_server) as db:
        db.execute("DELETE FROM roster_statements WHERE account_id = ?", [account])
    db.close()
    _insert_statement(live_server, account, 0, genesis)
    _insert_statement(live_server, account, 1, sign_statement(phone, forged.signing_key))
    owner_out, mom_out = _fetch_both(owner, tmp_path, "replaced")
    assert "not the pinned" in owner_out
    assert "does not start with exactly the device keys the invitation proved" in mom_out


def test_a_broken_chain_is_refused(attacked, live_server, tmp_path: Path) -> None:
    owner, forged = attacked
    account = owner.settings["account_id"]
    phone_key = (owner.phone / "device.key").read_text().strip()
    # Even a statement signed by the real phone is refused where it does not name its
    # predecessor (here: a made-up hash, as if statement 0 had been swapped).
    addition = RosterStatement(live_server.name, account, 1, "0" * 64, forged.device_key, None)
    _insert_statement(live_server, account, 1, sign_statement(addition, phone_key))
    owner_out, _mom_out = _fetch_both(owner, tmp_path, "broken")
    assert "does not name statement 0's hash" in owner_out


def test_the_server_refuses_roster_statements_it_cannot_chain(live_server, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    assert cli(phone, "register", "--server", live_server.url).returncode == 0
    settings = json.loads((phone / "settings.json").read_text())
    forged = inject_device(live_server, settings["account_id"])
    before = _roster_rows(live_server, settings["account_id"])
    head = statement_hash(before[-1][1])
    own = RosterStatement(live_server.name, settings["account_id"], 1, head, forged.device_key,
                          None)
    response = forged.call("POST", "/v1/roster",
                           json={"statement": sign_statement(own, forged.signing_key)})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_roster_statement"
    assert "not signed by a device already in the roster" in response.json()["error"]["message"]
    rival = genesis_statement(live_server.name, settings["account_id"], forged.device_key,
                              settings["recovery_recipient"])
    response = forged.call("POST", "/v1/roster",
                           json={"statement": sign_statement(rival, forged.signing_key)})
    assert response.status_code == 409 and response.json()["error"]["code"] == "roster_conflict"
    response = forged.call("POST", "/v1/roster", json={"statement": "not a note"})
    assert response.status_code == 400, response.text
    assert _roster_rows(live_server, settings["account_id"]) == before
    # Reading it back: the genesis the phone published, exactly.
    served = forged.call("GET", "/v1/roster").json()
    assert served == {"account_id": settings["account_id"],
                      "statements": [before[0][1]]}
    assert str(uuid.UUID(served["account_id"])) == settings["account_id"]


def test_contact_sets_and_link_requests_are_checked_by_the_server(live_server) -> None:
    phone = registered_device(live_server.url, live_server.name)
    genesis = genesis_statement(live_server.name, phone.account_id, phone.device_key,
                                phone.recovery_recipient)
    assert phone.call("POST", "/v1/roster", json={
        "statement": sign_statement(genesis, phone.signing_key)}).status_code == 201
    mom = age.recipient_of(age.generate_identity())
    first = ContactSet(live_server.name, phone.account_id, 1, (("c-mom", mom),))
    outsider = Device(live_server.url, live_server.name)
    refused = phone.call("PUT", "/v1/roster/contacts",
                         json={"statement": sign_contact_set(first, outsider.signing_key)})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_contact_set"
    assert phone.call("GET", "/v1/roster/contacts").json() == {"statement": None}
    note = sign_contact_set(first, phone.signing_key)
    assert phone.call("PUT", "/v1/roster/contacts", json={"statement": note}).status_code == 201
    assert phone.call("PUT", "/v1/roster/contacts", json={"statement": note}).status_code == 200
    older = sign_contact_set(ContactSet(live_server.name, phone.account_id, 1, ()),
                             phone.signing_key)
    stale = phone.call("PUT", "/v1/roster/contacts", json={"statement": older})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "contact_set_stale"
    assert phone.call("GET", "/v1/roster/contacts").json() == {"statement": note}

    code = phone.call("POST", "/v1/devices/invitations").json()["code"]
    tablet = Device(live_server.url, live_server.name)
    assert tablet.join(code).status_code == 201
    tablet.login()
    proof = {"proof": "B" * 43 + "="}
    assert tablet.call("POST", "/v1/roster/requests", json=proof).status_code == 201
    assert tablet.call("POST", "/v1/roster/requests", json=proof).status_code == 200
    other = tablet.call("POST", "/v1/roster/requests", json={"proof": "C" * 43 + "="})
    assert other.status_code == 409 and other.json()["error"]["code"] == "link_request_exists"
    listed = phone.call("GET", "/v1/roster/requests").json()["requests"]
    assert [(r["device_id"], r["device_key"], r["proof"]) for r in listed] == \
        [(tablet.device_id, tablet.device_key, proof["proof"])]
