"""`safehold device share`: one past encounter for a recipient who joined afterwards (issue 11).

Real processes throughout: a `safehold serve` subprocess, the `safehold` command for the owner's
phone and for the recipient (a lawyer), Debian's `age` for her re-wrapped chunk. One recording
is shared per module; the tests run in file order and revocation comes last.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import PYTHON, ROOT, ServerProcess

from crypto import age
from crypto.age.rewrap import rewrap_header
from crypto.errors import NoIdentityMatched
from crypto.grant import Grant, sign_grant
from crypto.signing import generate_signing_key
from sync.device.account import client_for
from sync.device.state import StateFolder
from sync.errors import ServerRefusal

CHUNK = 1000


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    return {**clean, "SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}


def safehold(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "cli.main", *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=120)


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    done = safehold(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@dataclass
class Shared:
    server: ServerProcess
    tmp: Path
    phone: Path
    lawyer: Path
    lawyer_key: Path
    media: bytes
    encounter: str  # shared with her
    other: str  # recorded later, never shared
    contact_id: str
    blobs_before: dict[str, str]
    join_stderr: str
    pinned_stderr: str

    def blobs(self) -> dict[str, str]:
        root = self.server.data_dir / "blobs"
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file() and self.encounter in str(p)}

    def owner_api(self) -> Any:
        state = StateFolder(self.phone)
        return client_for(state, state.require_registered())


@pytest.fixture(scope="module")
def shared(live_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Shared]:
    tmp = tmp_path_factory.mktemp("share")
    phone, lawyer = tmp / "phone", tmp / "lawyer"
    ok("device", "register", "--server", live_server.url, "--state", phone)
    media = os.urandom(2 * CHUNK + 500)
    (tmp / "talk.bin").write_bytes(media)
    encounter = ok("device", "record", tmp / "talk.bin", "--chunk-bytes", str(CHUNK),
                   "--state", phone).stdout.strip()
    root = live_server.data_dir / "blobs"
    before = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(root.rglob("*")) if p.is_file() and encounter in str(p)}
    assert sum("/audio/" in name for name in before) == 3
    # She is invited only now, after the recording was made and finished.
    invited = ok("device", "share", encounter, "--name", "Lawyer", "--state", phone)
    code = invited.stdout.strip()
    assert len(code.splitlines()) == 1 and encounter in invited.stderr
    identity = age.generate_identity()
    (tmp / "lawyer.key").write_text(f"{identity}\n")
    joined = ok("contact", "join", code, "--server", live_server.url, "--identity",
                tmp / "lawyer.key", "--state", lawyer)
    contact_id = json.loads((lawyer / "contact.json").read_text())["memberships"][0][
        "contact_id"]
    pinned = ok("device", "contacts", "--state", phone)
    other = ok("device", "record", "-", "--state", phone).stdout.strip()  # never shared
    yield Shared(live_server, tmp, phone, lawyer, tmp / "lawyer.key", media, encounter, other,
                 contact_id, before, joined.stderr + joined.stdout,
                 pinned.stderr + pinned.stdout)


def test_owner_pins_her_with_the_safety_number_she_sees(shared: Shared) -> None:
    safety = shared.join_stderr.split("safety number: ")[1].splitlines()[0].strip()
    assert f"access: encounter {shared.encounter} only" in shared.join_stderr
    assert f"Lawyer  [encounter {shared.encounter} only]  pinned" in shared.pinned_stderr
    count = len(shared.blobs_before)
    assert f"shared {count} more chunk(s) of encounter {shared.encounter} with Lawyer" in \
        shared.pinned_stderr
    assert safety in shared.pinned_stderr
    # She is never sealed to: what the phone records next has no stanza for her.
    api = shared.owner_api()
    body, _note = api.get_chunk(shared.other, "log", 0)
    with pytest.raises(NoIdentityMatched):
        age.decrypt(body, [shared.lawyer_key.read_text().strip()])


def test_she_fetches_verifies_and_decrypts_byte_identical_media(shared: Shared) -> None:
    bundle, out = shared.tmp / "bundle", shared.tmp / "out"
    fetched = ok("fetch", shared.encounter, "-o", bundle, "--state", shared.lawyer)
    assert f"Fetched    {len(shared.blobs_before)} chunks" in fetched.stdout + fetched.stderr
    ok("verify", bundle)
    ok("decrypt", bundle, "-i", shared.lawyer_key, "-o", out, "--no-pdf")
    (media,) = [p for p in out.iterdir() if p.name.startswith("audio")]
    assert media.read_bytes() == shared.media
    # Debian's age opens a re-wrapped chunk (new header + the unchanged payload) with her key.
    first = bundle / "chunks" / "audio" / "00000000.age"
    opened = subprocess.run(["age", "-d", "-i", str(shared.lawyer_key), str(first)],
                            capture_output=True, timeout=30)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == shared.media[:CHUNK]
    opened_payload = first.read_bytes()[age.read_header(first.read_bytes()).payload_offset:]
    again = ok("fetch", shared.encounter, "-o", bundle, "--state", shared.lawyer)  # resumable
    assert "OK: nothing was altered" in again.stdout
    assert first.read_bytes()[age.read_header(first.read_bytes()).payload_offset:] == \
        opened_payload
    # The server still holds exactly the bytes it was sent: no copy, no re-upload.
    assert shared.blobs() == shared.blobs_before


def test_she_reads_no_other_encounter(shared: Shared) -> None:
    refused = safehold("fetch", shared.other, "-o", shared.tmp / "nope", "--state",
                       shared.lawyer)
    assert refused.returncode == 3
    assert "not available to this contact" in refused.stderr
    listed = ok("contact", "list", "--state", shared.lawyer).stdout
    assert shared.encounter in listed and shared.other not in listed


def _grant_item(shared: Shared, seq: int, **change: Any) -> dict[str, Any]:
    """What the owner's device posts for one chunk, with `change` applied (hostile cases)."""
    state = StateFolder(shared.phone)
    api = shared.owner_api()
    body, _note = api.get_chunk(shared.encounter, "audio", seq)
    recipient = age.recipient_of(shared.lawyer_key.read_text().strip())
    header = change.get("header") or rewrap_header(body, [state.recovery_identity()],
                                                   [recipient])
    grant = Grant(shared.encounter, "audio", seq, recipient, hashlib.sha256(body).hexdigest(),
                  age.read_header(body).payload_offset,
                  hashlib.sha256(change.get("signed_header", header)).hexdigest(),
                  "2026-11-29T01:00:00.000Z")
    key = change.get("key") or state.device_signing_key()
    return {"stream": "audio", "seq": change.get("post_seq", seq),
            "header": base64.b64encode(header).decode(), "grant": sign_grant(grant, key)}


def test_server_refuses_hostile_grants_naming_the_chunk(shared: Shared) -> None:
    api = shared.owner_api()
    seq1 = _grant_item(shared, 1)
    header1 = base64.b64decode(seq1["header"])
    bad_mac = header1[:-10] + (b"A" if header1[-10:-9] != b"A" else b"B") + header1[-9:]
    cases = {
        "forged signature": (_grant_item(shared, 1, key=generate_signing_key("phone")),
                             "not signed by a device of this account"),
        "header of another chunk": (_grant_item(shared, 0, header=header1),
                                    "slot stanza names another chunk"),
        "grant of another chunk": (_grant_item(shared, 1, post_seq=2), "not for this chunk"),
        "header whose MAC was changed": (_grant_item(shared, 1, header=bad_mac,
                                                     signed_header=header1),
                                         "not the one the grant signed"),
    }
    before = len(api.json("GET", f"/v1/encounters/{shared.encounter}/grants",
                          auth=True)["grants"])
    for name, (item, message) in cases.items():
        with pytest.raises(ServerRefusal) as refused:
            api.json("POST", f"/v1/encounters/{shared.encounter}/grants", auth=True,
                     json_body={"contact_id": shared.contact_id, "grants": [item]})
        assert (refused.value.status, refused.value.code) == (400, "bad_grant"), name
        assert f"chunk audio seq {item['seq']}" in refused.value.message, name
        assert message in refused.value.message, (name, refused.value.message)
    after = api.json("GET", f"/v1/encounters/{shared.encounter}/grants", auth=True)["grants"]
    assert len(after) == before


def _tampered(shared: Shared, name: str) -> Path:
    copy = shared.tmp / f"tampered-{name}"
    shutil.copytree(shared.tmp / "bundle", copy)
    return copy


def test_verify_refuses_a_tampered_grant_chain_naming_the_chunk(shared: Shared) -> None:
    chunks = shared.tmp / "bundle" / "chunks" / "audio"
    grant1 = json.loads((chunks / "00000001.grant.json").read_text())
    age0, age1 = (chunks / "00000000.age").read_bytes(), (chunks / "00000001.age").read_bytes()
    cut0 = age.read_header(age0).payload_offset
    cut1 = age.read_header(age1).payload_offset

    forged = _tampered(shared, "forged")
    note = grant1["grant"]
    text = note.split("\n\n")[0] + "\n"
    grant = Grant.parse(text)
    (forged / "chunks/audio/00000001.grant.json").write_text(json.dumps(
        {**grant1, "grant": sign_grant(grant, generate_signing_key(
            StateFolder(shared.phone).require_registered().device_key.split("+")[0]))}))

    swapped = _tampered(shared, "swapped")  # chunk 1's header in front of chunk 0's payload
    (swapped / "chunks/audio/00000000.age").write_bytes(age1[:cut1] + age0[cut0:])

    bad_mac = _tampered(shared, "mac")
    mac_at = cut0 - 5
    flipped = age0[:mac_at] + (b"A" if age0[mac_at:mac_at + 1] != b"A" else b"B") + \
        age0[mac_at + 1:]
    (bad_mac / "chunks/audio/00000000.age").write_bytes(flipped)

    for bundle, seq, words in ((forged, 1, "not signed by a device of the owner's roster"),
                               (swapped, 0, "does not match the owner's grant"),
                               (bad_mac, 0, "does not match the owner's grant")):
        checked = safehold("verify", bundle)
        assert checked.returncode == 1, (bundle, checked.stdout, checked.stderr)
        shown = checked.stdout + checked.stderr
        assert f"chunk audio seq {seq}" in shown and words in shown, (bundle, shown)
    denied = safehold("decrypt", bad_mac, "-i", shared.lawyer_key, "-o", shared.tmp / "o2",
                      "--no-pdf")
    assert denied.returncode == 1 and not (shared.tmp / "o2").exists()

    # A header with a wrong MAC that the owner's device itself signed (a buggy phone): only
    # the file key can tell, so verify passes and decrypt leaves the chunk out, naming it.
    signed_bad = _tampered(shared, "signed-mac")
    grant0 = json.loads((chunks / "00000000.grant.json").read_text())
    resigned = Grant.parse(grant0["grant"].split("\n\n")[0] + "\n")
    resigned = Grant(**{**vars(resigned),
                        "header_sha256": hashlib.sha256(flipped[:cut0]).hexdigest()})
    (signed_bad / "chunks/audio/00000000.age").write_bytes(flipped)
    (signed_bad / "chunks/audio/00000000.grant.json").write_text(json.dumps(
        {**grant0, "grant": sign_grant(resigned, StateFolder(shared.phone).device_signing_key())}))
    ok("verify", signed_bad)
    opened = safehold("decrypt", signed_bad, "-i", shared.lawyer_key, "-o", shared.tmp / "o3",
                      "--no-pdf")
    assert opened.returncode == 1  # the rest is kept, with the gap marked (as decrypt does)
    assert "audio: seq 0 could not be decrypted" in opened.stdout + opened.stderr


def _wait_for_chunk(shared: Shared) -> str:
    """The id of the live recording once the server holds its first audio chunk."""
    api = shared.owner_api()
    for _ in range(600):
        for encounter in [e["encounter_id"] for e in api.list_encounters()]:
            if encounter in (shared.encounter, shared.other):
                continue
            if 0 in api.encounter(encounter)["streams"].get("audio", {}).get("seqs", []):
                return str(encounter)
        time.sleep(0.05)
    raise AssertionError("the live recording's first chunk never reached the server")


def test_chunks_recorded_after_a_live_share_reach_her_on_the_next_sync(shared: Shared) -> None:
    """Shared while still recording (the phone streams stdin): what arrives later is re-wrapped
    on the next `device sync`."""
    media = os.urandom(3 * CHUNK)
    live = subprocess.Popen([PYTHON, "-m", "cli.main", "device", "record", "-", "--chunk-bytes",
                             str(CHUNK), "--state", str(shared.phone)], cwd=ROOT, env=env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert live.stdin is not None
        live.stdin.write(media[:2 * CHUNK])  # the first chunk leaves once more follows
        live.stdin.flush()
        encounter = _wait_for_chunk(shared)
        code = ok("device", "share", encounter, "--state", shared.phone).stdout.strip()
        ok("contact", "join", code, "--server", shared.server.url, "--identity",
           shared.lawyer_key, "--state", shared.lawyer)
        first = ok("device", "contacts", "--state", shared.phone).stderr
        assert f"of encounter {encounter}" in first
        live.stdin.write(media[2 * CHUNK:])
        live.stdin.close()
        assert live.wait(timeout=120) == 0, live.stderr.read() if live.stderr else ""
    finally:
        if live.poll() is None:
            live.kill()
    synced = ok("device", "sync", "--state", shared.phone)
    assert f"more chunk(s) of encounter {encounter}" in synced.stderr
    bundle, out = shared.tmp / "bundle-live", shared.tmp / "out-live"
    ok("fetch", encounter, "-o", bundle, "--state", shared.lawyer)
    ok("decrypt", bundle, "-i", shared.lawyer_key, "-o", out, "--no-pdf")
    (audio,) = [p for p in out.iterdir() if p.name.startswith("audio")]
    assert audio.read_bytes() == media


def test_revoked_recipient_is_served_nothing(shared: Shared) -> None:
    api = shared.owner_api()
    log_path = f"/v1/encounters/{shared.encounter}/access-log"
    before = api.json("GET", log_path, auth=True)["entries"]
    assert any(e["contact_id"] == shared.contact_id for e in before)  # her reads are logged
    wrong = safehold("device", "share", shared.other, "--revoke", shared.contact_id,
                     "--state", shared.phone)  # not a share of that encounter: nothing ends
    assert wrong.returncode == 2 and "is not a recipient of a share of" in wrong.stderr
    assert api.json("GET", f"/v1/contacts/{shared.contact_id}", auth=True)["status"] == "active"
    revoked = ok("device", "share", shared.encounter, "--revoke", shared.contact_id,
                 "--state", shared.phone)
    assert "revoked" in revoked.stderr
    refused = safehold("fetch", shared.encounter, "-o", shared.tmp / "after", "--state",
                       shared.lawyer)
    assert refused.returncode == 3, refused.stderr
    assert "not available to this contact" in refused.stderr
    assert api.json("GET", log_path, auth=True)["entries"] == before
    assert shared.blobs() == shared.blobs_before
