"""The recorder page (/record) in a real Chromium whose fake microphone plays a 440 Hz tone:
set up a phone, invite a contact who joins with `safehold contact join`, record ~10 s, and the
contact's fetch + verify + decrypt give back a WebM of ~10 s with that tone. A second Chromium
is killed with SIGKILL in the middle of a recording: what reached the server verifies as cut off
and decrypts to a playable prefix, and the page, opened again, sends what was sealed but not sent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from age_tty import run_with_tty
from fetchkit import safehold
from helpers import ServerProcess
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)
from webkit import CHROMIUM, PASSPHRASE, new_page

TONE_HZ = 440
BASE_ARGS = ("--no-sandbox", "--disable-dev-shm-usage")
SAFETY = re.compile(r"^(\d{5} ){11}\d{5}$")


def tone_wav(path: Path, seconds: int = 30, rate: int = 48_000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        step = 2 * math.pi * TONE_HZ / rate
        out.writeframes(b"".join(struct.pack("<h", int(12_000 * math.sin(step * i)))
                                 for i in range(seconds * rate)))
    return path


def media_args(wav: Path) -> tuple[str, ...]:
    return ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}")


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tone_wav(tmp_path_factory.mktemp("tone") / "tone.wav")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright, wav: Path) -> Iterator[Browser]:
    # One browser for the module (the persistent ones of the kill test are its own).
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=[*BASE_ARGS, *media_args(wav)])
    yield browser
    browser.close()


@dataclass
class Persistent:
    """A Chromium with a profile folder (its IndexedDB survives the process) that can be
    killed like a phone knocked out of a hand."""

    context: BrowserContext
    profile: Path

    @property
    def page(self) -> Page:
        return self.context.pages[0] if self.context.pages else self.context.new_page()

    def kill(self) -> None:
        # The browser process of this profile only (its command line names the folder).
        killed = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"--user-data-dir={self.profile}".encode() in args and \
                    not any(a.startswith(b"--type=") for a in args):
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        assert killed == 1, f"{killed} browser processes of {self.profile}"
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone after a kill
            self.context.close()


def launch_persistent(playwright: Playwright, profile: Path, wav: Path) -> Persistent:
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True,
        args=[*BASE_ARGS, *media_args(wav)])
    context.set_default_timeout(60_000)
    return Persistent(context, profile)


def set_up_phone(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/record")
    page.get_by_role("textbox", name="Passphrase", exact=True).fill(PASSPHRASE)
    page.get_by_role("textbox", name="Repeat passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Set up this phone").click()
    expect(page.get_by_label("Server key fingerprint")).to_have_text(re.compile("^[0-9a-f]{64}$"))


def invite_and_join(page: Page, server: ServerProcess, root: Path) -> tuple[Path, Path, str]:
    page.get_by_role("textbox", name="Their name").fill("Mom")
    page.get_by_role("button", name="Invite a trusted contact").click()
    code_box = page.get_by_role("textbox", name="Invitation code")
    expect(code_box).to_have_value(re.compile(r"^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$"))
    code = code_box.input_value()
    assert page.get_by_role("link", name="Invitation link").get_attribute("href") == \
        f"{server.url}/contact#invite={code}"
    # The same link as a QR code drawn in the page (web/test/qr.test.mjs decodes it back).
    expect(page.get_by_role("img", name="Invitation QR code")).to_be_visible()
    mom, key = root / "mom", root / "mom.key"
    assert safehold("keygen", "-o", key).returncode == 0
    joined = safehold("contact", "join", code, "--server", server.url, "--identity", key,
                      "--state", mom)
    assert joined.returncode == 0, joined.stderr
    page.get_by_role("button", name="Check who joined").click()
    safety = page.get_by_label("Safety number of Mom")
    expect(safety).to_have_text(SAFETY)
    # The page and Mom's CLI compute the same number from both sides' keys.
    assert f"safety number: {safety.inner_text()}" in joined.stdout, joined.stdout
    return mom, key, safety.inner_text()


def recovery_opens_with_the_passphrase(page: Page, root: Path) -> None:
    """The recovery identity is offered only as a passphrase-protected age file (`age -d`)."""
    with page.expect_download() as download:
        page.get_by_role("link", name="Save my recovery key").click()
    sealed = root / "recovery.key.age"
    download.value.save_as(sealed)
    assert sealed.read_text().startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    opened = root / "recovery.key"
    status, transcript = run_with_tty(["age", "-d", "-o", str(opened), str(sealed)], [PASSPHRASE])
    assert status == 0, transcript
    assert opened.read_text().splitlines()[2].startswith("AGE-SECRET-KEY-1")


def record_for(page: Page, seconds: float) -> str:
    page.get_by_role("button", name="Start recording").click()
    encounter = page.get_by_label("Recording id")
    expect(encounter).to_have_text(re.compile("^[0-9a-f-]{36}$"))
    time.sleep(seconds)
    return encounter.inner_text()


def all_sent(page: Page) -> None:
    expect(page.get_by_label("Upload status")).to_have_text(
        re.compile(r"^Everything recorded is on the server"), timeout=60_000)


def fetch_verify_decrypt(mom: Path, key: Path, encounter: str, out: Path) -> tuple[str, Path]:
    bundle = out / "bundle"
    fetched = safehold("fetch", encounter, "-o", bundle, "--state", mom)
    assert fetched.returncode == 0, fetched.stderr
    verified = safehold("verify", bundle)
    decrypted = safehold("decrypt", bundle, "-i", key, "-o", out / "plain", "--no-pdf")
    assert decrypted.returncode == 0, decrypted.stderr
    return verified.stdout + verified.stderr, out / "plain"


def decoded_audio(path: Path) -> tuple[float, float]:
    """(seconds, dominant frequency) of what ffmpeg decodes from `path`, mono 16 kHz."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("the recorder's browser test needs ffmpeg: apt-get install -y ffmpeg")
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", "16000", "-"], capture_output=True, check=True).stdout
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    seconds = len(samples) / 16_000
    middle = samples[len(samples) // 4: 3 * len(samples) // 4]
    crossings = sum(1 for a, b in zip(middle, middle[1:], strict=False) if a < 0 <= b)
    return seconds, crossings / (len(middle) / 16_000)


def test_the_page_is_served_with_a_strict_policy_and_only_its_own_files(
        live_server: ServerProcess) -> None:
    page = requests.get(f"{live_server.url}/record", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["Referrer-Policy"] == "no-referrer"
    # Only files of this server; no CDN, no inline script.
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith(("/web/", "#")) for s in sources), sources
    assert "<script>" not in page.text
    for source in sources:
        if source.startswith("/web/"):
            assert requests.get(live_server.url + source, timeout=10).status_code == 200, source
    names = re.findall(r"<button[^>]*>([^<]+)</button>", page.text)
    for name in ("Set up this phone", "Invite a trusted contact", "Start recording",
                 "Alert my contacts", "I am safe"):
        assert name in names, names


def test_a_recording_reaches_the_contact_with_its_tone(
        browser: Browser, live_server: ServerProcess, tmp_path: Path) -> None:
    context, page = new_page(browser)
    context.grant_permissions(["geolocation"], origin=live_server.url)
    context.set_geolocation({"latitude": 52.52, "longitude": 13.405, "accuracy": 12})
    set_up_phone(page, live_server)
    recovery_opens_with_the_passphrase(page, tmp_path)
    mom, key, _ = invite_and_join(page, live_server, tmp_path)
    encounter = record_for(page, 5)
    page.get_by_role("textbox", name="Note (badge number, agency, what was said)").fill(
        "Badge 4711, CBP")
    page.get_by_role("button", name="Add a note").click()
    expect(page.get_by_role("status").first).to_have_text("Added to the recording.")
    page.get_by_role("button", name="Add my location").click()
    time.sleep(5)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.get_by_role("button", name="Start recording")).to_be_visible()
    all_sent(page)
    # After the stop closed the log, a note goes to the encounter's addenda.
    sent_before = page.get_by_label("Upload status").inner_text()
    page.get_by_role("textbox", name="Note (badge number, agency, what was said)").fill(
        "They left at 10:42")
    page.get_by_role("button", name="Add a note").click()
    expect(page.get_by_role("status").first).to_have_text("Added to the recording.")
    expect(page.get_by_label("Upload status")).not_to_have_text(sent_before)
    all_sent(page)
    page.get_by_role("button", name="Alert my contacts").click()
    expect(page.get_by_role("status").first).to_have_text("Your contacts were alerted.")
    context.close()

    report, plain = fetch_verify_decrypt(mom, key, encounter, tmp_path)
    assert "cut off" not in report, report
    seconds, hz = decoded_audio(plain / "audio.webm")
    assert 8 <= seconds <= 12.5, seconds
    assert abs(hz - TONE_HZ) < 15, hz
    log = [json.loads(line) for line in (plain / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log][:1] == ["start"] and log[-1]["event"] == "stop"
    assert {"event": "note", "text": "Badge 4711, CBP"}.items() <= next(
        e for e in log if e["event"] == "note").items()
    assert {"event": "location", "lat": 52.52, "lon": 13.405, "accuracy": 12}.items() <= next(
        e for e in log if e["event"] == "location").items()
    addenda = [json.loads(line) for line in (plain / "addenda.jsonl").read_text().splitlines()]
    assert [(e["event"], e["text"]) for e in addenda] == [("note", "They left at 10:42")]
    chunks = [e for e in log if e["event"] == "chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks))) and chunks[-1]["final"]


OUTBOX_JS = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("safehold-recorder");
  req.onsuccess = () => {
    const get = req.result.transaction("chunks").objectStore("chunks").getAll();
    get.onsuccess = () => resolve(get.result.map((c) => ({ stream: c.stream, state: c.state,
      header: new TextDecoder().decode(c.bytes.subarray(0, 400)) })));
    get.onerror = () => reject(get.error);
  };
  req.onerror = () => reject(req.error);
})"""


def test_a_substituted_contact_key_is_refused_and_a_forged_receipt_acknowledges_nothing(
        browser: Browser, live_server: ServerProcess, tmp_path: Path) -> None:
    context, page = new_page(browser)
    set_up_phone(page, live_server)
    page.get_by_role("textbox", name="Their name").fill("Eve")
    page.get_by_role("button", name="Invite a trusted contact").click()
    code = page.get_by_role("textbox", name="Invitation code")
    expect(code).to_have_value(re.compile(r"\."))
    assert safehold("keygen", "-o", tmp_path / "eve.key").returncode == 0
    assert safehold("contact", "join", code.input_value(), "--server", live_server.url,
                    "--identity", tmp_path / "eve.key", "--state", tmp_path / "eve").returncode == 0
    # The server (or whoever sits in its place) reports another age key for Eve.
    assert safehold("keygen", "-o", tmp_path / "mallory.key").returncode == 0
    mallory = (tmp_path / "mallory.key").read_text().split("public key: ")[1].split()[0]

    def substitute(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        for contact in body["contacts"]:
            contact["age_recipient"] = mallory
        route.fulfill(response=answer, json=body)

    page.route("**/v1/contacts", substitute)
    revoked: list[int] = []
    page.on("response", lambda r: revoked.append(r.status)
            if r.request.method == "DELETE" and "/v1/contacts/" in r.url else None)
    page.get_by_role("button", name="Check who joined").click()
    expect(page.get_by_text(re.compile("REFUSED: the keys the server holds for this contact do "
                                       "not match the invitation"))).to_be_visible()
    assert revoked == [200]
    expect(page.get_by_label("Safety number of Eve")).to_have_count(0)

    # Receipts whose checkpoint is not signed by the pinned server key acknowledge nothing.
    def forge(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        body["checkpoint"] = body["checkpoint"].replace("\n\n\u2014 ", "\nforged\n\n\u2014 ")
        route.fulfill(response=answer, json=body)

    page.route("**/chunks/*", forge)
    record_for(page, 2)
    expect(page.get_by_label("Upload status")).to_have_text(re.compile(
        "^STOPPED: the receipt's checkpoint does not verify"))
    page.get_by_role("button", name="Stop recording").click()
    chunks = page.evaluate(OUTBOX_JS)
    assert chunks and all(c["state"] == "queued" for c in chunks), chunks
    # Sealed only to the owner's recovery key: never to Eve's or Mallory's.
    assert all(c["header"].count("-> X25519 ") == 1 for c in chunks)
    context.close()


def test_offline_then_killed_leaves_a_verifiable_prefix_and_the_reopened_page_sends_the_rest(
        playwright: Playwright, wav: Path, make_server: Callable[..., ServerProcess],
        tmp_path: Path) -> None:
    server = make_server()
    profile = tmp_path / "profile"
    first = launch_persistent(playwright, profile, wav)
    page = first.page
    set_up_phone(page, server)
    mom, key, _ = invite_and_join(page, server, tmp_path)
    encounter = record_for(page, 4)
    # The server goes away in the middle: the page keeps recording and sealing into its outbox,
    # and says so; then the phone is knocked away (SIGKILL, nothing is flushed or closed).
    server.stop()
    time.sleep(3)
    expect(page.get_by_label("Upload status")).to_have_text(re.compile(
        r"^No connection to the server .* pieces are kept safe on this phone"))
    first.kill()
    server.start()

    partial, plain = fetch_verify_decrypt(mom, key, encounter, tmp_path / "partial")
    assert "cut off" in partial, partial
    seconds, hz = decoded_audio(plain / "audio.webm")
    assert 1 <= seconds <= 6, seconds  # what had reached the server of ~4 s
    assert abs(hz - TONE_HZ) < 15, hz

    # Opened again, the page sends what was sealed while the server was away.
    again = launch_persistent(playwright, profile, wav)
    again.page.goto(f"{server.url}/record")
    all_sent(again.page)
    again.close()
    later, plain = fetch_verify_decrypt(mom, key, encounter, tmp_path / "later")
    seconds_later, hz = decoded_audio(plain / "audio.webm")
    assert seconds_later >= seconds + 1.5, (seconds, seconds_later)
    assert abs(hz - TONE_HZ) < 15, hz
    assert "cut off" in later, later  # the kill ended the recording: no final chunk was made
