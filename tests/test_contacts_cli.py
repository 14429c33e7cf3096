"""`safehold device invite|contacts|alert|safe` and `safehold contact join|list`, end to end.

Real processes: the `safehold` command against a real server subprocess; a passphrase-protected
identity file unlocked on a pseudo-terminal; a key swapped in the server's database file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from age_tty import run_with_tty
from helpers import PYTHON, ROOT, ServerProcess

from crypto import age
from crypto.errors import NoIdentityMatched
from sync.people.client import contact_client
from sync.people.contact_state import ContactState

PASSPHRASE = "correct horse battery staple"


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    return {**clean, "SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}


def safehold(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "cli.main", *args], cwd=ROOT, env=env(), input=stdin,
                          capture_output=True, text=True, timeout=120)


def identity_file(path: Path, protected: bool = False) -> str:
    identity = age.generate_identity()
    text = f"# test contact\n{identity}\n".encode()
    if protected:
        text = age.encrypt_with_passphrase(text, PASSPHRASE, work_factor=10, armor=True)
    path.write_bytes(text)
    return identity


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_invite_join_verify_record_and_list(live_server: ServerProcess,
                                            tmp_path: Path) -> None:
    phone, mom, bob = tmp_path / "phone", tmp_path / "mom", tmp_path / "bob"
    assert safehold("device", "register", "--server", live_server.url,
                    "--state", str(phone)).returncode == 0
    invited = safehold("device", "invite", "--long", "--name", "Mom", "--policy", "immediate",
                       "--state", str(phone))
    assert invited.returncode == 0, invited.stderr
    code = invited.stdout.strip()
    assert len(code.splitlines()) == 1 and code.count(".") == 1 and "Mom" in invited.stderr

    mom_identity = identity_file(tmp_path / "mom.key", protected=True)
    status, screen = run_with_tty(
        [PYTHON, "-m", "cli.main", "contact", "join", code, "--server", live_server.url,
         "--identity", str(tmp_path / "mom.key"), "--name", "Maria", "--state", str(mom)],
        [PASSPHRASE], cwd=str(ROOT), env=env())
    assert status == 0, screen
    assert "Passphrase for" in screen and PASSPHRASE not in screen  # asked without echo
    contact_safety = screen.split("safety number: ")[1].splitlines()[0].strip()

    pending = safehold("contact", "list", "--state", str(mom))
    assert pending.returncode == 0 and "pending" in pending.stdout

    listed = safehold("device", "contacts", "--state", str(phone))
    assert listed.returncode == 0, listed.stderr
    assert "Mom  [immediate]  pinned" in listed.stdout
    assert f"safety number: {contact_safety}" in listed.stdout

    (tmp_path / "talk.bin").write_bytes(os.urandom(2500))
    recorded = safehold("device", "record", str(tmp_path / "talk.bin"), "--chunk-bytes", "1000",
                        "--state", str(phone))
    assert recorded.returncode == 0, recorded.stderr
    encounter = recorded.stdout.strip()
    shown = safehold("contact", "list", "--state", str(mom))
    assert shown.returncode == 0, shown.stderr
    assert "active" in shown.stdout and f"{encounter}  started" in shown.stdout
    assert "(immediate)" in shown.stdout

    # Mom reads and opens the first audio chunk with her own identity.
    state = ContactState(mom)
    (membership,) = state.memberships()
    api = contact_client(state, membership)
    body = api.request("GET", f"/v1/encounters/{encounter}/streams/audio/chunks/0",
                       auth=True).content
    assert age.decrypt(body, [mom_identity]) == (tmp_path / "talk.bin").read_bytes()[:1000]

    # Bob joins an on_alert invitation; the server then swaps his recipient for its own.
    code_b = safehold("device", "invite", "--long", "--name", "Bob", "--policy", "on_alert",
                      "--state", str(phone)).stdout.strip()
    bob_identity = identity_file(tmp_path / "bob.key")
    joined = safehold("contact", "join", code_b, "--server", live_server.url,
                      "--identity", str(tmp_path / "bob.key"), "--state", str(bob))
    assert joined.returncode == 0, joined.stderr
    bob_id = json.loads((bob / "contact.json").read_text())["memberships"][0]["contact_id"]
    attacker = age.generate_identity()
    with sqlite3.connect(live_server.data_dir / "safehold.sqlite3", timeout=30) as db:
        db.execute("UPDATE contacts SET age_recipient = ? WHERE contact_id = ?",
                   [age.recipient_of(attacker), bob_id])
    refused = safehold("device", "contacts", "--state", str(phone))
    assert refused.returncode == 1
    assert "REFUSED Bob" in refused.stderr and "substituted" in refused.stdout

    again = safehold("device", "record", "-", "--state", str(phone), stdin="after the swap")
    assert again.returncode == 0, again.stderr
    second = again.stdout.strip()
    body = api.request("GET", f"/v1/encounters/{second}/streams/log/chunks/0",
                       auth=True).content
    assert age.x25519_stanza_count(age.read_header(body)) == 2  # Mom and the owner's recovery
    assert age.decrypt(body, [mom_identity])
    for outsider in (attacker, bob_identity):
        with pytest.raises(NoIdentityMatched):
            age.decrypt(body, [outsider])

    alerted = safehold("device", "alert", second, "--state", str(phone))
    assert alerted.returncode == 0 and "alert raised" in alerted.stdout
    assert safehold("device", "safe", "nonsense", "--state", str(phone)).returncode == 2


def test_join_refuses_a_malformed_code(live_server: ServerProcess, tmp_path: Path) -> None:
    identity_file(tmp_path / "k")
    done = safehold("contact", "join", "not-a-code", "--server", live_server.url,
                    "--identity", str(tmp_path / "k"), "--state", str(tmp_path / "c"))
    assert done.returncode == 2 and "not an invitation code" in done.stderr
    assert safehold("contact", "list", "--state", str(tmp_path / "c")).returncode == 2


def test_a_code_beginning_with_a_dash_and_pasted_with_spaces_joins(live_server: ServerProcess,
                                                                    tmp_path: Path) -> None:
    """About 1 in 64 codes begins with "-"; argparse took those for options (README broke)."""
    import time

    from crypto.invitation import InvitationCode
    from sync.device.account import client_for
    from sync.device.state import StateFolder
    from sync.people.owner import contact_book, make_invitation

    phone, mom = tmp_path / "phone", tmp_path / "mom"
    assert safehold("device", "register", "--server", live_server.url,
                    "--state", str(phone)).returncode == 0
    state = StateFolder(phone)
    settings = state.require_registered()
    book = contact_book(state)
    try:
        code, _ = make_invitation(book, settings, client_for(state, settings), "Mom",
                                  "immediate", None, time.time(),
                                  InvitationCode("-" + "A" * 21, os.urandom(32)))
    finally:
        book.close()
    assert code.startswith("-")
    identity_file(tmp_path / "mom.key")
    joined = safehold("contact", "join", f"  {code}\n", "--server", live_server.url,
                      "--identity", str(tmp_path / "mom.key"), "--state", str(mom))
    assert joined.returncode == 0, joined.stderr
    safety = joined.stdout.split("safety number: ")[1].splitlines()[0].strip()
    listed = safehold("device", "contacts", "--state", str(phone))
    assert "Mom  [immediate]  pinned" in listed.stdout
    assert f"safety number: {safety}" in listed.stdout


def test_an_unknown_option_before_the_code_is_still_a_usage_error(tmp_path: Path) -> None:
    done = safehold("contact", "join", "--idenity", "x.key", "abc.def", "--server",
                    "http://127.0.0.1:9", "--state", str(tmp_path / "s"))
    assert done.returncode == 2
    assert "error: the following arguments are required: --identity" in done.stderr
