"""The contact page receives recordings: checks everything `safehold verify` checks, decrypts
in the browser, and shows (never plays or offers) what was altered."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import sqlite3
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from age_tty import run_with_tty
from helpers import PYTHON, ROOT, ServerProcess
from playwright.sync_api import Browser, Locator, Page, Route, expect
from synckit import api_for, cli, cli_popen, client_env, register, wait_until
from webkit import PASSPHRASE, join_on_page, launch, new_page

from crypto.age.keys import load_identity
from sync.errors import ServerRefusal


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@dataclass
class Contact:
    """One page joined as the contact of one phone (immediate policy), shared by this module's
    tests (joining costs two scrypt runs); `sent` collects every request the page makes."""

    page: Page
    phone: Path
    sent: list[bytes]


@pytest.fixture(scope="module")
def contact(browser: Browser, live_server: ServerProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contact]:
    context, page = new_page(browser)
    sent: list[bytes] = []
    page.on("request", lambda r: sent.append(
        r.url.encode() + b"\n" + str(r.headers).encode() + b"\n" + (r.post_data_buffer or b"")))
    phone = tmp_path_factory.mktemp("web-receive") / "phone"
    register(phone, live_server.url)
    code = cli(phone, "invite", "--long", "--name", "Mom", "--policy", "immediate").stdout.strip()
    join_on_page(page, live_server.url, code)
    assert cli(phone, "contacts").returncode == 0
    yield Contact(page, phone, sent)
    context.close()


def record(phone: Path, data: bytes, tmp_path: Path, *args: str) -> str:
    source = tmp_path / f"rec-{len(data)}-{os.urandom(4).hex()}.bin"
    source.write_bytes(data)
    done = cli(phone, "record", str(source), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


def encounter_item(page: Page, encounter: str) -> Locator:
    item = page.locator(f"li[data-encounter='{encounter}']")
    expect(item).to_be_visible(timeout=30_000)
    return item


def download(page: Page, link: Locator, target: Path) -> bytes:
    with page.expect_download() as got:
        link.click()
    got.value.save_as(target)
    return target.read_bytes()


def test_a_recording_decrypts_in_the_browser_byte_identical(
        contact: Contact, tmp_path: Path) -> None:
    page, phone = contact.page, contact.phone
    data = os.urandom(300_000)
    encounter = record(phone, data, tmp_path, "--chunk-bytes", "65536")

    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    audio = item.locator("li[data-stream='audio']")
    expect(audio).to_contain_text("complete: 5 pieces")
    expect(item).to_contain_text("Checked: every piece is exactly what the phone signed")
    assert download(page, audio.get_by_role("link", name="Download", exact=True),
                    tmp_path / "audio.bin") == data
    # The event log stream is there too, as safehold decrypt writes it.
    log = download(page, item.locator("li[data-stream='log']").get_by_role(
        "link", name="Download", exact=True), tmp_path / "log.jsonl")
    assert log.endswith(b"\n") and log.count(b"\n") >= 1


def test_a_tampered_chunk_is_shown_and_not_offered(
        contact: Contact, live_server: ServerProcess, tmp_path: Path) -> None:
    page, phone = contact.page, contact.phone
    data = os.urandom(3 * 65536)
    encounter = record(phone, data, tmp_path, "--chunk-bytes", "65536")
    [blob] = live_server.data_dir.rglob(f"{encounter}/audio/00000001.age")
    stored = bytearray(blob.read_bytes())
    stored[-20] ^= 0x01  # one bit of the ciphertext, on the server's disk
    blob.write_bytes(bytes(stored))

    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    expect(item.get_by_role("alert")).to_contain_text("failed the checks")
    expect(item).to_contain_text("audio/1 was altered")
    audio = item.locator("li[data-stream='audio']")
    expect(audio).to_contain_text("Pieces left out because they failed the checks: 1.")
    got = download(page, audio.get_by_role("link", name="Download", exact=True),
                   tmp_path / "audio.bin")
    # Only the pieces that passed: the altered piece's bytes are nowhere in the file.
    assert got == data[:65536] + data[2 * 65536:]
    assert "Checked: every piece" not in item.inner_text()


def safehold(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "cli.main", *args], cwd=ROOT, env=client_env(env),
                          capture_output=True, text=True, timeout=120)


def test_live_recording_followed_then_bundle_verified_and_decrypted_by_the_cli(
        contact: Contact, tmp_path: Path) -> None:
    page, phone = contact.page, contact.phone
    data = os.urandom(320_000)
    source = tmp_path / "live.bin"
    source.write_bytes(data)
    # ~16 s of "capture", a piece every ~0.8 s, uploaded as it is recorded.
    recording = cli_popen(phone, "record", str(source), "--chunk-bytes", "16000",
                          "--rate", "20000")
    try:
        assert recording.stdout is not None
        encounter = recording.stdout.readline().strip()
        item = encounter_item(page, encounter)
        item.get_by_role("button", name="Decrypt").click()
        audio = item.locator("li[data-stream='audio']")
        expect(audio).to_be_visible()
        # Pieces were shown while the phone was still recording...
        assert recording.poll() is None, "the recording ended before the page showed a piece"
        expect(item).to_contain_text("Following the recording as it arrives")
        # ...and the page kept following it to its end.
        expect(audio).to_contain_text("complete: 20 pieces", timeout=90_000)
        assert recording.wait(timeout=60) == 0
    finally:
        if recording.poll() is None:
            recording.kill()
        recording.wait()
    assert download(page, audio.get_by_role("link", name="Download", exact=True),
                    tmp_path / "audio.bin") == data

    bundle = tmp_path / "case.zip"
    download(page, item.get_by_role("link", name="Download bundle"), bundle)
    verified = safehold("verify", str(bundle))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    key_file = tmp_path / "key.age"
    download(page, page.get_by_role("link", name="Save my key file"), key_file)
    out = tmp_path / "out"
    decrypted = safehold("decrypt", str(bundle), "-i", str(key_file), "-o", str(out),
                         env={"SAFEHOLD_PASSPHRASE": PASSPHRASE})
    assert decrypted.returncode == 0, decrypted.stderr
    assert (out / "audio.bin").read_bytes() == data

    # Nothing the page sent (joining included) carried a key, the passphrase or plaintext:
    # not this contact's identity in any spelling, nor any secret key or sealed key file.
    sent = b"\n".join(contact.sent)
    assert len(contact.sent) > 20 and b"/accept" in sent
    status, transcript = run_with_tty(["age", "-d", "-o", str(tmp_path / "key.txt"),
                                       str(key_file)], [PASSPHRASE])
    assert status == 0, transcript
    identity = (tmp_path / "key.txt").read_text().splitlines()[-1]
    secret_bytes = load_identity(identity)[0].private_bytes_raw()
    for secret in (identity.encode(), identity.lower().encode(), secret_bytes,
                   base64.b64encode(secret_bytes), base64.b64encode(secret_bytes).rstrip(b"="),
                   base64.urlsafe_b64encode(secret_bytes).rstrip(b"="), secret_bytes.hex().encode(),
                   b"AGE-SECRET-KEY-", b"PRIVATE+KEY", PASSPHRASE.encode(),
                   b"BEGIN AGE ENCRYPTED FILE"):
        assert secret not in sent
    for at in range(0, len(data) - 32, 4000):
        assert data[at:at + 32] not in sent


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_a_chunk_signed_by_a_device_the_invitation_did_not_prove_is_shown_as_forged(
        contact: Contact, live_server: ServerProcess, tmp_path: Path) -> None:
    """A hostile server slips a device of its own into the owner's account: the server accepts
    its uploads and logs them honestly, but the page trusts only the device keys the invitation
    proved, so those chunks are named as forged and kept out of the files."""
    page, phone = contact.page, contact.phone
    data = os.urandom(2 * 65536)
    encounter = record(phone, data, tmp_path, "--chunk-bytes", "65536")
    intruder = tmp_path / "intruder"
    register(intruder, live_server.url)
    intruder_id = json.loads((intruder / "settings.json").read_text())["device_id"]
    owner_id = json.loads((phone / "settings.json").read_text())["account_id"]
    db = sqlite3.connect(live_server.data_dir / "safehold.sqlite3", timeout=30)
    with db:
        db.execute("UPDATE devices SET account_id = ? WHERE device_id = ?", (owner_id, intruder_id))
    db.close()
    source = tmp_path / "forged.bin"
    source.write_bytes(b"forged evidence " * 4096)
    cli(intruder, "record", str(source), "--stream", "video", "--encounter", encounter)

    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    expect(item.get_by_role("alert")).to_contain_text("failed the checks")
    expect(item).to_contain_text("video/0: its descriptor is not signed by the owner's devices")
    video = item.locator("li[data-stream='video']")
    expect(video).to_contain_text("Pieces left out because they failed the checks: 0.")
    expect(video.get_by_role("link", name="Download", exact=True)).to_have_count(0)
    audio = item.locator("li[data-stream='audio']")
    assert download(page, audio.get_by_role("link", name="Download", exact=True),
                    tmp_path / "audio.bin") == data


def test_a_recorded_sound_plays_in_the_page_reassembled_from_its_pieces(
        contact: Contact, tmp_path: Path) -> None:
    page, phone = contact.page, contact.phone
    sound = io.BytesIO()
    with wave.open(sound, "wb") as out:  # 1.5 s of a 440 Hz tone, 8 kHz mono 16-bit
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i
                                                                       / 8000)))
                                 for i in range(12000)))
    # Pieces after the first are continuation bytes of one file: only the whole plays.
    encounter = record(phone, sound.getvalue(), tmp_path, "--chunk-bytes", "4096")
    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    expect(item.locator("li[data-stream='audio']")).to_contain_text("complete: 6 pieces")
    player = item.get_by_label("Play audio")
    expect(player).to_be_visible()
    duration = player.evaluate("""a => a.readyState >= 1 ? a.duration : new Promise(
        (ok, fail) => { a.onloadedmetadata = () => ok(a.duration); a.onerror = fail; })""")
    assert abs(duration - 1.5) < 0.01


def test_a_recording_cut_off_mid_way_gives_what_reached_the_server(
        contact: Contact, live_server: ServerProcess, tmp_path: Path) -> None:
    """The phone is knocked away (the recorder killed -9): the page shows the stream has no end
    and offers exactly the pieces the server holds, in order."""
    page, phone = contact.page, contact.phone
    data = os.urandom(400_000)
    source = tmp_path / "cut.bin"
    source.write_bytes(data)
    recording = cli_popen(phone, "record", str(source), "--chunk-bytes", "16000",
                          "--rate", "40000")
    try:
        assert recording.stdout is not None
        encounter = recording.stdout.readline().strip()
        owner = api_for(phone, live_server.url)

        def held_audio() -> int:
            try:  # the recorder prints the id before the server knows the encounter
                streams = owner.json("GET", f"/v1/encounters/{encounter}", auth=True)["streams"]
            except ServerRefusal:
                return 0
            return len(streams.get("audio", {}).get("seqs", []))

        wait_until(lambda: held_audio() >= 3, timeout=60, what="three audio pieces on the server")
    finally:
        recording.kill()
        recording.wait()
    time.sleep(1)  # an upload whose body had fully arrived may still be committed
    held = owner.json("GET", f"/v1/encounters/{encounter}", auth=True)["streams"]["audio"]
    assert held["final_seq"] is None

    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    audio = item.locator("li[data-stream='audio']")
    expect(audio).to_contain_text(f"no end yet: {len(held['seqs'])} pieces so far")
    expect(item).to_contain_text("Following the recording as it arrives")
    got = download(page, audio.get_by_role("link", name="Download", exact=True),
                   tmp_path / "audio.bin")
    assert got == b"".join(data[seq * 16000:(seq + 1) * 16000] for seq in held["seqs"])


def test_a_piece_whose_download_fails_once_is_fetched_again_not_called_altered(
        contact: Contact, tmp_path: Path) -> None:
    page, phone = contact.page, contact.phone
    data = os.urandom(3 * 65536)
    encounter = record(phone, data, tmp_path, "--chunk-bytes", "65536")
    failed: list[str] = []

    def fail_once(route: Route) -> None:
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.abort("connectionreset")

    pattern = f"**/v1/encounters/{encounter}/streams/audio/chunks/1"
    page.route(pattern, fail_once)
    try:
        item = encounter_item(page, encounter)
        item.get_by_role("button", name="Decrypt").click()
        audio = item.locator("li[data-stream='audio']")
        expect(audio).to_contain_text("complete: 3 pieces")
        expect(item.get_by_role("link", name="Download bundle")).to_be_visible()
    finally:
        page.unroute(pattern)
    assert len(failed) == 1
    expect(item).to_contain_text("Checked: every piece is exactly what the phone signed")
    assert download(page, audio.get_by_role("link", name="Download", exact=True),
                    tmp_path / "audio.bin") == data


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_a_log_rewritten_on_the_server_is_refused_as_a_whole(
        contact: Contact, live_server: ServerProcess, tmp_path: Path) -> None:
    """The server serves another descriptor than the one it logged and signed (its stored leaf
    bytes changed): the leaves no longer hash to the signed checkpoint, nothing is decrypted."""
    page, phone = contact.page, contact.phone
    encounter = record(phone, os.urandom(65536), tmp_path, "--chunk-bytes", "65536")
    db = sqlite3.connect(live_server.data_dir / "safehold.sqlite3", timeout=30)
    with db:
        (data,) = db.execute("SELECT data FROM log_leaves WHERE encounter_id = ? AND "
                             "leaf_index = 0", (encounter,)).fetchone()
        forged = bytes(data).replace(b"\nsize ", b"\nsize 1")
        assert forged != bytes(data)
        db.execute("UPDATE log_leaves SET data = ? WHERE encounter_id = ? AND leaf_index = 0",
                   (forged, encounter))
    db.close()
    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    expect(item.get_by_role("alert")).to_have_text(
        "This recording could not be checked: the log's entries do not hash to the signed "
        "checkpoint: it was altered")
    expect(item.get_by_role("link", name="Download", exact=True)).to_have_count(0)
    expect(item.get_by_role("link", name="Download bundle")).to_have_count(0)


def test_notes_and_locations_show_in_the_timeline_as_text(contact: Contact) -> None:
    """Issue 15: a note and a location added while recording, and a note added after it
    stopped, are shown in the recording's timeline; HTML and escape codes in a note are shown,
    never obeyed."""
    page, phone = contact.page, contact.phone
    recording = subprocess.Popen(
        [PYTHON, "-m", "cli.main", "device", "record", "-", "--chunk-bytes", "4096", "--state",
         str(phone)], cwd=ROOT, env=client_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    assert recording.stdin is not None and recording.stdout is not None
    recording.stdin.write(os.urandom(8192))
    recording.stdin.flush()
    encounter = recording.stdout.readline().decode().strip()
    hostile = "Badge 4471 <img src=x onerror=alert(1)> \x1b[2J\u202eevil"
    during = cli(phone, "note", encounter, hostile, "--lat", "40.7128", "--lon", "-74.006",
                 "--accuracy", "12.5")
    assert during.returncode == 0, during.stderr
    recording.stdin.close()
    assert recording.wait(timeout=120) == 0
    assert cli(phone, "note", encounter, "Plate NYC 1234").returncode == 0

    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    timeline = item.get_by_role("list", name="Notes and locations")
    expect(timeline.locator("li")).to_have_count(5)  # start, note, location, stop, note
    events = timeline.locator("li")
    expect(events.nth(0)).to_contain_text("Recording of audio started")
    expect(events.nth(1)).to_contain_text(
        "Note: Badge 4471 <img src=x onerror=alert(1)> \\x1b[2J\\u202eevil")
    expect(events.nth(2)).to_contain_text(
        "Location: latitude 40.7128, longitude -74.006 (within 12.5 m)")
    expect(events.nth(3)).to_contain_text("Recording of audio stopped (2 pieces)")
    expect(events.nth(4)).to_contain_text(
        "Note: Plate NYC 1234 (added after the recording stopped)")
    assert item.locator("img").count() == 0  # the markup stayed text
    addenda = item.locator("li[data-stream='addenda']")
    expect(addenda).to_contain_text("1 note added after the recording stopped")
    expect(addenda).to_contain_text("addenda.jsonl")
    # a stopped recording with addenda is finished, not followed as if still recording
    expect(item.get_by_role("link", name="Download bundle")).to_be_visible(timeout=10_000)
    assert "Following the recording" not in item.inner_text()
    assert "cut off" not in item.inner_text()


@pytest.mark.sqlite_only("reads the server's SQLite file to sign a cut-back log")
def test_a_log_cut_back_after_the_page_checked_it_is_refused_as_tampering(
        contact: Contact, live_server: ServerProcess, tmp_path: Path) -> None:
    """Issue 10: the page keeps the largest checkpoint it verified (IndexedDB). The operator
    then serves the log cut back to its first two entries under a checkpoint it signs with the
    server key, as after a restored backup: the next check of that recording names a rollback,
    not a recording merely cut off."""
    from tests.hostilekit import read_key, signed_checkpoint

    page, phone = contact.page, contact.phone
    encounter = record(phone, os.urandom(3 * 65536), tmp_path, "--chunk-bytes", "65536")
    item = encounter_item(page, encounter)
    item.get_by_role("button", name="Decrypt").click()
    expect(item).to_contain_text("Checked: every piece is exactly what the phone signed")
    with sqlite3.connect(live_server.data_dir / "safehold.sqlite3", timeout=30) as db:
        first_two = [bytes(row[0]) for row in db.execute(
            "SELECT data FROM log_leaves WHERE encounter_id = ? AND leaf_index < 2 "
            "ORDER BY leaf_index", (encounter,))]
    note = signed_checkpoint(read_key(live_server.data_dir / "server.key"), live_server.name,
                             encounter, first_two)
    page.route(f"**/v1/encounters/{encounter}/log/checkpoint", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps({"tree_size": 2, "checkpoint": note})))
    item.get_by_role("button", name="Decrypt").click()  # a fresh check: only IndexedDB remembers
    # (the page's own reads are logged too, so the log it verified is longer than the chunks)
    expect(item.get_by_role("alert")).to_contain_text(re.compile(
        r"EVIDENCE TAMPERING: the server's log was rolled back: this browser verified its "
        r"signed checkpoint of ([3-9]|\d\d+) entries on [0-9T:.Z-]+, the server now serves 2"))
    expect(item.get_by_role("link", name="Download bundle")).to_have_count(0)
