"""A second device joins with `safehold device link` / `device add`, and records for the contacts.

Real parts: `safehold serve` on loopback, the CLIs as subprocesses, the server's SQLite file for
the operator's moves. The phone invites Mom and pins her; the tablet is linked; what the tablet
records is sealed to Mom too, and Mom's fetch trusts the tablet because the phone signed it into
the roster. A key the operator tries to link without the code's secret is refused; a roster the
operator rolls back is refused by the phone that saw it longer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from bundlekit import run_cli
from helpers import Device, ServerProcess

from crypto.device_link import LinkCode
from tests.synckit import cli, cli_popen

ENV = {"SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}


def safehold(*args: str | Path) -> tuple[int, str]:
    done = run_cli(*args, env=ENV)
    return done.returncode, done.stdout + done.stderr


def phone_with_mom(server: ServerProcess, tmp_path: Path) -> tuple[Path, Path, Path]:
    phone, mom, mom_key = tmp_path / "phone", tmp_path / "mom", tmp_path / "mom.key"
    assert cli(phone, "register", "--server", server.url).returncode == 0
    invited = cli(phone, "invite", "--long", "--name", "Mom", "--policy", "immediate")
    assert invited.returncode == 0, invited.stderr
    assert safehold("keygen", "-o", mom_key)[0] == 0
    code, out = safehold("contact", "join", invited.stdout.strip(), "--server", server.url,
                         "--identity", mom_key, "--state", mom)
    assert code == 0, out
    assert cli(phone, "contacts").returncode == 0  # verify, pin, publish the contact set
    return phone, mom, mom_key


def start_link(phone: Path, wait: int = 60) -> tuple[subprocess.Popen[str], str]:
    linking = cli_popen(phone, "link", "--wait", str(wait))
    assert linking.stdout is not None
    return linking, linking.stdout.readline().strip()


def test_a_linked_device_records_for_the_contacts(live_server, tmp_path: Path) -> None:
    phone, mom, mom_key = phone_with_mom(live_server, tmp_path)
    linking, code = start_link(phone)
    tablet = tmp_path / "tablet"
    added = cli(tablet, "add", code, "--server", live_server.url)
    assert added.returncode == 0, added.stderr
    assert "sealed to 1 contact(s)" in added.stdout
    out, err = linking.communicate(timeout=60)
    assert linking.returncode == 0, err
    tablet_id = json.loads((tablet / "settings.json").read_text())["device_id"]
    assert f"added device {tablet_id} to the roster" in out
    assert not (tablet / "recovery.key").exists()  # only the recipient reaches the tablet

    media = os.urandom(5000)
    (tmp_path / "t.bin").write_bytes(media)
    recorded = cli(tablet, "record", str(tmp_path / "t.bin"), "--chunk-bytes", "2000")
    assert recorded.returncode == 0, recorded.stderr
    encounter = recorded.stdout.strip()

    code, out = safehold("fetch", encounter, "-o", tmp_path / "mom-bundle", "--state", mom)
    assert code == 0, out
    assert "OK: nothing was altered" in out
    code, out = safehold("decrypt", tmp_path / "mom-bundle", "-i", mom_key, "-o",
                         tmp_path / "mom-out")
    assert code == 0, out
    assert (tmp_path / "mom-out" / "audio.bin").read_bytes() == media
    # The phone trusts it too, and opens it with the recovery identity only it holds.
    code, out = safehold("fetch", encounter, "-o", tmp_path / "own", "--state", phone)
    assert code == 0, out
    genesis = json.loads((phone / "settings.json").read_text())["roster_genesis"]
    assert f"Roster     2 device(s) signed in from genesis {genesis}" in out
    assert f"genesis {genesis}" in added.stdout  # what the tablet pinned, to compare
    code, out = safehold("decrypt", tmp_path / "own", "-i", phone / "recovery.key", "-o",
                         tmp_path / "own-out")
    assert code == 0 and (tmp_path / "own-out" / "audio.bin").read_bytes() == media, out


def test_a_key_linked_without_the_secret_is_not_added(live_server, tmp_path: Path) -> None:
    """The operator sees the server code in transit and registers a device of its own with it;
    without the secret its link proof cannot match, and the phone does not sign it in."""
    phone = tmp_path / "phone"
    assert cli(phone, "register", "--server", live_server.url).returncode == 0
    linking, code = start_link(phone, wait=8)
    intruder = Device(live_server.url, live_server.name)
    assert intruder.join(LinkCode.parse(code).server_code).status_code == 201
    intruder.login()
    bogus = intruder.call("POST", "/v1/roster/requests", json={"proof": "A" * 43 + "="})
    assert bogus.status_code == 201, bogus.text
    # The link gives up when its wait is over (its last look comes after the deadline, so
    # the request posted before it is seen), with exit 3: no device was added.
    _out, err = linking.communicate(timeout=60)
    assert linking.returncode == 3, err
    assert f"device {intruder.device_id} asked to join with a proof that matches no code" in err
    statements = intruder.call("GET", "/v1/roster").json()["statements"]
    assert len(statements) == 1 and intruder.device_key not in statements[0]
    # A later sync of the phone does not add it either.
    synced = cli(phone, "sync")
    assert synced.returncode == 0, synced.stderr
    assert len(intruder.call("GET", "/v1/roster").json()["statements"]) == 1


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_a_rolled_back_roster_is_refused(live_server, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    assert cli(phone, "register", "--server", live_server.url).returncode == 0
    linking, code = start_link(phone)
    assert cli(tmp_path / "tablet", "add", code, "--server", live_server.url).returncode == 0
    assert linking.wait(timeout=60) == 0
    (tmp_path / "a.bin").write_bytes(b"a" * 100)
    recorded = cli(phone, "record", str(tmp_path / "a.bin"))
    assert recorded.returncode == 0, recorded.stderr
    account = json.loads((phone / "settings.json").read_text())["account_id"]
    db = sqlite3.connect(live_server.data_dir / "safehold.sqlite3")
    with db:  # the operator restores the roster as it was before the tablet joined
        db.execute("DELETE FROM roster_statements WHERE account_id = ? AND seq = 1", [account])
    db.close()
    code, out = safehold("fetch", recorded.stdout.strip(), "-o", tmp_path / "b",
                         "--state", phone)
    assert code == 1, out
    assert "rolled back" in out and not (tmp_path / "b" / "manifest.json").exists()
    synced = cli(phone, "sync")
    assert synced.returncode == 1 and "rolled back" in synced.stderr, synced.stderr


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_a_contact_refuses_a_roster_rolled_back_below_what_it_saw(live_server,
                                                                  tmp_path: Path) -> None:
    phone, mom, _mom_key = phone_with_mom(live_server, tmp_path)
    linking, code = start_link(phone)
    assert cli(tmp_path / "tablet", "add", code, "--server", live_server.url).returncode == 0
    assert linking.wait(timeout=60) == 0
    (tmp_path / "a.bin").write_bytes(b"a" * 100)
    recorded = cli(phone, "record", str(tmp_path / "a.bin"))
    assert recorded.returncode == 0, recorded.stderr
    encounter = recorded.stdout.strip()
    code, out = safehold("fetch", encounter, "-o", tmp_path / "first", "--state", mom)
    assert code == 0, out  # Mom saw the roster with the tablet: 2 statements
    account = json.loads((phone / "settings.json").read_text())["account_id"]
    db = sqlite3.connect(live_server.data_dir / "safehold.sqlite3")
    with db:
        db.execute("DELETE FROM roster_statements WHERE account_id = ? AND seq = 1", [account])
    db.close()
    code, out = safehold("fetch", encounter, "-o", tmp_path / "second", "--state", mom)
    assert code == 1 and "rolled back" in out, out
    assert not (tmp_path / "second" / "manifest.json").exists()


def sealed_to(state: Path) -> list[str]:
    from sync.upload.outbox import Outbox

    outbox = Outbox(state / "outbox.db")
    try:
        return outbox.contact_recipients()
    finally:
        outbox.close()


def test_contacts_pinned_and_revoked_later_follow_the_signed_contact_set(live_server,
                                                                        tmp_path: Path) -> None:
    phone, mom, _mom_key = phone_with_mom(live_server, tmp_path)
    linking, code = start_link(phone)
    tablet = tmp_path / "tablet"
    assert cli(tablet, "add", code, "--server", live_server.url).returncode == 0
    assert linking.wait(timeout=60) == 0
    mom_recipient = json.loads((mom / "contact.json").read_text())["memberships"][0][
        "age_recipient"]
    assert sealed_to(tablet) == [mom_recipient]

    invited = cli(phone, "invite", "--long", "--name", "Dad", "--policy", "immediate")
    assert safehold("keygen", "-o", tmp_path / "dad.key")[0] == 0
    code_, out = safehold("contact", "join", invited.stdout.strip(), "--server",
                          live_server.url, "--identity", tmp_path / "dad.key", "--state",
                          tmp_path / "dad")
    assert code_ == 0, out
    assert cli(phone, "contacts").returncode == 0  # pins Dad, publishes the next set
    assert cli(tablet, "sync").returncode == 0
    dad_recipient = json.loads((tmp_path / "dad" / "contact.json").read_text())[
        "memberships"][0]["age_recipient"]
    assert sorted(sealed_to(tablet)) == sorted([mom_recipient, dad_recipient])

    mom_id = json.loads((mom / "contact.json").read_text())["memberships"][0]["contact_id"]
    assert cli(phone, "contacts", "--revoke", mom_id).returncode == 0
    assert cli(tablet, "sync").returncode == 0
    assert sealed_to(tablet) == [dad_recipient]  # revoked on the phone, dropped here too
