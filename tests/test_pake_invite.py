"""Short read-aloud invitation codes over SPAKE2 (issue 11), end to end with real processes.

The owner's `device invite` (a subprocess that waits) and the contact's `contact join` run
against a real server over HTTP. The hostile relay is played the way an operator would: by
editing the server's database file between the two sides' steps.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from fetchkit import safehold
from helpers import ServerProcess
from notifykit import AppServer
from synckit import cli_popen

from crypto.pake import OwnerPake, ShortCode, new_short_code

CODE = re.compile(r"[1-9][0-9]{0,5}-[a-z]+-[a-z]+")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    data = tmp_path_factory.mktemp("pake") / "data"
    started = ServerProcess(data, env={"SAFEHOLD_RATE_PER_MINUTE": "100000"}).start()
    yield started  # type: ignore[misc]
    started.stop()


@pytest.fixture(scope="module")
def phone(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("phone") / "state"
    done = safehold("device", "register", "--server", server.url, "--state", state)
    assert done.returncode == 0, done.stderr
    return state


def _invite(phone: Path, name: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start `device invite` (it waits for the contact); (process, the code it printed)."""
    owner = cli_popen(phone, "invite", "--name", name, "--policy", "immediate", *extra)
    assert owner.stdout is not None
    code = owner.stdout.readline().strip()
    assert CODE.fullmatch(code), (code, owner.stderr.read() if owner.poll() is not None else "")
    return owner, code


def _join(server: ServerProcess, contact: Path, code: str, *extra: str
          ) -> subprocess.CompletedProcess[str]:
    key = contact.with_suffix(".key")
    if not key.exists():
        assert safehold("keygen", "-o", key).returncode == 0
    return safehold("contact", "join", code, "--server", server.url, "--identity", key,
                    "--state", contact, "--wait", "20", *extra)


def _mailbox(server: ServerProcess, nameplate: str) -> dict[str, str]:
    with sqlite3.connect(server.data_dir / "safehold.sqlite3") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM pake_mailboxes WHERE nameplate = ? ORDER BY "
                         "created_at DESC LIMIT 1", [nameplate]).fetchone()
    return dict(row)


def _edit_mailbox(server: ServerProcess, nameplate: str, **values: str) -> None:
    sets = ", ".join(f"{k} = ?" for k in values)
    with sqlite3.connect(server.data_dir / "safehold.sqlite3") as db:
        db.execute(f"UPDATE pake_mailboxes SET {sets} WHERE nameplate = ?",  # noqa: S608
                   [*values.values(), nameplate])


@pytest.mark.sqlite_only("reads or edits the mailbox row in the SQLite file")
def test_a_short_code_read_aloud_joins_and_the_contact_fetches_a_recording(
        server: ServerProcess, phone: Path, tmp_path: Path) -> None:
    owner, code = _invite(phone, "Mom")
    # Read aloud and typed back: upper case, spaces instead of dashes, stray whitespace.
    spoken = "  " + code.upper().replace("-", " ") + "\n"
    joined = _join(server, tmp_path / "mom", spoken)
    assert joined.returncode == 0, joined.stderr
    out, err = owner.communicate(timeout=30)
    assert owner.returncode == 0, err
    assert "Mom used the code" in err
    safety = joined.stdout.split("safety number: ")[1].splitlines()[0]
    # `device invite` itself verified and pinned her: both show the same safety number.
    assert "Mom  pinned" in out and f"safety number: {safety}" in out
    box = _mailbox(server, code.split("-")[0])
    assert box["status"] == "done"
    assert code.split("-", 1)[1] not in str(box)  # the words never reach the server

    listed = safehold("device", "contacts", "--state", phone)
    assert listed.returncode == 0, listed.stderr
    assert "Mom  [immediate]  pinned" in listed.stdout
    assert f"safety number: {safety}" in listed.stdout

    media = tmp_path / "talk.bin"
    media.write_bytes(b"evidence " * 300)
    recorded = safehold("device", "record", media, "--chunk-bytes", "1000", "--state", phone)
    assert recorded.returncode == 0, recorded.stderr
    encounter = recorded.stdout.strip().splitlines()[0]
    fetched = safehold("fetch", encounter, "-o", tmp_path / "bundle", "--state",
                       tmp_path / "mom")
    assert fetched.returncode == 0, fetched.stderr
    decrypted = safehold("decrypt", tmp_path / "bundle", "-i", tmp_path / "mom.key", "-o",
                         tmp_path / "out")
    assert decrypted.returncode == 0, decrypted.stderr
    assert (tmp_path / "out" / "audio.bin").read_bytes() == media.read_bytes()

    again = _join(server, tmp_path / "other", code)  # usable once
    assert again.returncode == 1 and "already used" in again.stderr


@pytest.mark.sqlite_only("reads or edits the mailbox row in the SQLite file")
def test_one_wrong_guess_burns_the_code_and_the_owner_is_told(
        server: ServerProcess, phone: Path, tmp_path: Path) -> None:
    owner, code = _invite(phone, "Guessed")
    nameplate, first, second = code.split("-")
    wrong = new_short_code(nameplate)
    while wrong.words == (first, second):
        wrong = new_short_code(nameplate)
    guessed = _join(server, tmp_path / "eve", wrong.text())
    assert guessed.returncode == 1
    assert "did not accept the code" in guessed.stderr and "void" in guessed.stderr
    _, err = owner.communicate(timeout=30)
    assert owner.returncode == 1
    assert f"someone used the short code {code} with a wrong guess" in err
    assert _mailbox(server, nameplate)["status"] == "burned"

    right = _join(server, tmp_path / "late", code)  # the right code no longer works
    assert right.returncode == 1 and "voided" in right.stderr
    listed = safehold("device", "contacts", "--state", phone)
    assert f"Guessed  [short code {code}]  burned" in listed.stdout
    assert "wrong guess" in listed.stdout


@pytest.mark.sqlite_only("reads or edits the mailbox row in the SQLite file")
def test_a_relay_that_substitutes_the_owners_message_is_detected(
        server: ServerProcess, phone: Path, tmp_path: Path) -> None:
    """The operator swaps in a SPAKE2 message of its own (its one guess at the words)."""
    waited = safehold("device", "invite", "--name", "Swapped", "--wait", "0", "--state", phone)
    assert waited.returncode == 3 and "stays valid" in waited.stderr
    code = waited.stdout.strip()
    nameplate = code.split("-")[0]
    guess = OwnerPake(new_short_code(nameplate))
    _edit_mailbox(server, nameplate,
                  owner_message=base64.b64encode(guess.message).decode())
    # The contact claims under the swapped message; only the owner's device could answer.
    contact = subprocess.Popen(
        [*_join_command(server, tmp_path / "ana", code)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=_root(), env=_env())
    _wait_for(lambda: _mailbox(server, nameplate)["status"] == "claimed")
    answered = safehold("device", "contacts", "--state", phone)
    assert f"Swapped  [short code {code}]  burned" in answered.stdout
    _, err = contact.communicate(timeout=30)
    assert contact.returncode == 1 and "did not accept the code" in err
    assert not (tmp_path / "ana" / "contact.json").exists()


@pytest.mark.sqlite_only("reads or edits the mailbox row in the SQLite file")
def test_a_replayed_owner_answer_is_detected_by_the_contact(
        server: ServerProcess, phone: Path, tmp_path: Path) -> None:
    """The operator answers a fresh code with an earlier exchange's confirmation and sealed
    invitation (it holds both): the contact's check fails, and the owner sees it too."""
    earlier_owner, earlier = _invite(phone, "Earlier")
    assert _join(server, tmp_path / "first", earlier).returncode == 0
    earlier_owner.communicate(timeout=30)
    old = _mailbox(server, earlier.split("-")[0])

    waited = safehold("device", "invite", "--name", "Replayed", "--wait", "0", "--state", phone)
    code = waited.stdout.strip()
    nameplate = code.split("-")[0]
    contact = subprocess.Popen(
        [*_join_command(server, tmp_path / "bob", code)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=_root(), env=_env())
    _wait_for(lambda: _mailbox(server, nameplate)["status"] == "claimed")
    _edit_mailbox(server, nameplate, status="done", owner_confirm=old["owner_confirm"],
                  sealed=old["sealed"])
    _, err = contact.communicate(timeout=30)
    assert contact.returncode == 1, err
    assert "server changed or replayed the PAKE messages" in err
    assert not (tmp_path / "bob" / "contact.json").exists()
    listed = safehold("device", "contacts", "--state", phone)
    assert f"Replayed  [short code {code}]  burned" in listed.stdout
    assert "never answered it" in listed.stdout


@pytest.mark.sqlite_only("reads or edits the mailbox row in the SQLite file")
def test_a_replayed_contact_message_burns_the_code(server: ServerProcess, phone: Path,
                                                   tmp_path: Path) -> None:
    """A claim replayed from another exchange fails the owner's confirmation check."""
    earlier_owner, earlier = _invite(phone, "Before")
    assert _join(server, tmp_path / "c1", earlier).returncode == 0
    earlier_owner.communicate(timeout=30)
    old = _mailbox(server, earlier.split("-")[0])
    owner, code = _invite(phone, "Target")
    import requests

    claimed = requests.post(f"{server.url}/v1/nameplates/{code.split('-')[0]}/claim", json={
        "contact_message": old["contact_message"], "contact_confirm": old["contact_confirm"]},
        timeout=10)
    assert claimed.status_code == 200
    _, err = owner.communicate(timeout=30)
    assert owner.returncode == 1 and "wrong guess" in err
    again = requests.post(f"{server.url}/v1/nameplates/{code.split('-')[0]}/claim", json={
        "contact_message": old["contact_message"], "contact_confirm": old["contact_confirm"]},
        timeout=10)
    assert again.status_code == 409 and again.json()["error"]["code"] == "code_burned"


def test_malformed_codes_are_usage_errors_and_unknown_numbers_refused(
        server: ServerProcess, tmp_path: Path) -> None:
    bad_word = _join(server, tmp_path / "x", "12-guitarist-notaword")
    assert bad_word.returncode == 2 and "not a word" in bad_word.stderr
    unknown = _join(server, tmp_path / "y", "999999-" + "-".join(new_short_code("1").words))
    assert unknown.returncode == 3 and "no such short code" in unknown.stderr
    with pytest.raises(Exception, match="parts"):
        ShortCode.parse("12-guitarist")


def test_an_expired_short_code_is_refused(clocked_server: AppServer, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    assert safehold("device", "register", "--server", clocked_server.url,
                    "--state", phone).returncode == 0
    made = safehold("device", "invite", "--name", "Late", "--expires", "5", "--wait", "0",
                    "--state", phone)
    code = made.stdout.strip()
    assert CODE.fullmatch(code), made.stderr
    clocked_server.clock.advance(5 * 60 + 1)
    late = safehold("contact", "join", code, "--server", clocked_server.url, "--identity",
                    _key(tmp_path), "--state", tmp_path / "late")
    assert late.returncode == 3 and "expired" in late.stderr
    listed = safehold("device", "contacts", "--state", phone)
    assert f"Late  [short code {code}]  expired" in listed.stdout
    too_long = safehold("device", "invite", "--expires", "2000", "--state", phone)
    assert too_long.returncode == 2 and "--expires" in too_long.stderr


def test_long_and_qr_keep_the_long_code_and_link(server: ServerProcess, phone: Path) -> None:
    made = safehold("device", "invite", "--qr", "--name", "Paste", "--state", phone)
    assert made.returncode == 0, made.stderr
    code = made.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", code)
    assert f"{server.url}/contact#invite={code}" in made.stderr
    assert "\u2580" in made.stderr or "\u2584" in made.stderr or "\u2588" in made.stderr  # QR


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "contact.key"
    assert safehold("keygen", "-o", key).returncode == 0
    return key


def _join_command(server: ServerProcess, contact: Path, code: str) -> list[str]:
    from helpers import PYTHON

    key = contact.with_suffix(".key")
    assert safehold("keygen", "-o", key).returncode == 0
    return [PYTHON, "-m", "cli.main", "contact", "join", code, "--server", server.url,
            "--identity", str(key), "--state", str(contact), "--wait", "20"]


def _root() -> Path:
    from helpers import ROOT

    return Path(ROOT)


def _env() -> dict[str, str]:
    from synckit import client_env

    return client_env()


def _wait_for(condition: object, timeout: float = 20) -> None:
    from synckit import wait_until

    wait_until(condition, timeout, "the contact's claim")  # type: ignore[arg-type]


@pytest.mark.sqlite_only("reads or edits the mailbox row in the SQLite file")
def test_the_relay_endpoints_refuse_strangers_and_malformed_messages(
        server: ServerProcess) -> None:
    """Over HTTP: only the owner's account sees or answers its mailbox; anyone may claim, but
    only well-formed messages, once. A refusal leaves the mailbox exactly as it was."""
    import requests
    from helpers import error_of, registered_device

    owner = registered_device(server.url, server.name)
    stranger = registered_device(server.url, server.name)
    pake = OwnerPake(new_short_code("1"))
    made = owner.call("POST", "/v1/pake", json={"owner_message": b64(pake.message),
                                                 "lifetime_seconds": 600})
    assert made.status_code == 201, made.text
    box = made.json()
    before = _mailbox(server, box["nameplate"])
    assert error_of(stranger.call("GET", f"/v1/pake/{box['pake_id']}")) == (404, "not_found")
    assert error_of(stranger.call("POST", f"/v1/pake/{box['pake_id']}/reply",
                                  json={"outcome": "burned"})) == (404, "not_found")
    assert requests.get(f"{server.url}/v1/pake/{box['pake_id']}", timeout=5).status_code == 401
    assert error_of(owner.call("POST", f"/v1/pake/{box['pake_id']}/reply", json={
        "outcome": "done", "owner_confirm": b64(bytes(32)), "sealed": b64(bytes(40))})) == \
        (409, "code_not_claimed")
    claim = f"{server.url}/v1/nameplates/{box['nameplate']}/claim"
    for bad in ({"contact_message": "short", "contact_confirm": b64(bytes(32))},
                {"contact_message": b64(bytes(33)), "contact_confirm": "x" * 44},
                {"contact_message": b64(bytes(33))}):
        assert error_of(requests.post(claim, json=bad, timeout=5)) == (422, "invalid_request")
    assert error_of(owner.call("POST", "/v1/pake", json={
        "owner_message": b64(pake.message), "lifetime_seconds": 10})) == (422, "invalid_request")
    for nameplate in ("0", "01", "abc", "1234567"):
        assert requests.get(f"{server.url}/v1/nameplates/{nameplate}", timeout=5
                            ).status_code == 404
    assert _mailbox(server, box["nameplate"]) == before
    first = {"contact_message": b64(b"B" + bytes(32)), "contact_confirm": b64(bytes(32))}
    assert requests.post(claim, json=first, timeout=5).status_code == 200
    assert requests.post(claim, json=first, timeout=5).status_code == 200  # same claim: same
    other = {**first, "contact_confirm": b64(bytes([1]) * 32)}
    assert error_of(requests.post(claim, json=other, timeout=5)) == (409, "code_used")
    assert _mailbox(server, box["nameplate"])["contact_confirm"] == first["contact_confirm"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
