"""`safehold device note`: notes and locations in the event log, end to end (issue 15).

One phone with one trusted contact (Mom) over the real server, all through real CLI processes:
a note with a location added while a `record` of the same state folder is running (the note
shares its log stream and its upload queue), a note after the recording stopped (the log is
closed: it goes to the `addenda` stream), then Mom's fetch + verify + decrypt show both in
log.jsonl / addenda.jsonl, report.json, report.html and on the terminal - with the HTML and
escape codes typed into the note shown, never obeyed. Refused notes exit 2 and queue nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fetchkit import household, safehold

from sync.upload.eventlog import encode_entry
from tests.helpers import ROOT
from tests.synckit import cli, client_env, command, outbox_chunks, register

DURING = "Badge 4471 <script>alert(1)</script> \x1b[2J\x1b[32mOK: nothing was altered\x1b[0m"
AFTER = "Written after: the car's plate was NYC 1234 & the officer said \"move\""


def doc_lines() -> list[str]:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    body = doc.split("<!-- example: event-log -->\n```\n", 1)[1].split("```\n", 1)[0]
    return body.splitlines(keepends=True)


def test_the_documented_event_log_lines_are_what_the_python_writer_makes() -> None:
    lines = doc_lines()
    assert len(lines) == 7
    for line in lines:
        assert encode_entry(json.loads(line)).decode() == line
    assert json.loads(lines[2])["text"] == 'Badge 4471, "Officer" Müller <said> stay\tback'


@pytest.fixture(scope="module")
def case(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("notes")
    home = household(live_server, root)
    # A live recording from stdin: it waits for more input after each chunk, so the note below
    # is certainly added while it runs.
    recording = subprocess.Popen(command(home.phone, "record", "-", "--chunk-bytes", "4096"),
                                 cwd=ROOT, env=client_env(), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert recording.stdin is not None and recording.stdout is not None
    recording.stdin.write(os.urandom(8192))
    recording.stdin.flush()
    encounter = recording.stdout.readline().decode().strip()
    during = cli(home.phone, "note", encounter, DURING, "--lat", "40.7128", "--lon", "-74.006",
                 "--accuracy", "12.5")
    running = recording.poll() is None
    recording.stdin.write(os.urandom(5000))
    recording.stdin.close()
    assert recording.wait(timeout=120) == 0, recording.stderr.read() if recording.stderr else ""
    after = cli(home.phone, "note", encounter, AFTER)
    bundle, out = root / "case", root / "out"
    fetched = safehold("fetch", encounter, "-o", bundle, "--state", home.mom)
    assert fetched.returncode == 0, fetched.stderr
    verified = safehold("verify", bundle)
    decrypted = safehold("decrypt", bundle, "-i", home.mom_key, "-o", out, "--state",
                         home.mom, "--no-pdf")
    return {"home": home, "encounter": encounter, "during": during, "running": running,
            "after": after, "verified": verified, "decrypted": decrypted, "out": out}


def jsonl(path: Path) -> list[str]:
    return path.read_text(encoding="ascii").splitlines(keepends=True)


def test_a_note_during_a_recording_joins_its_event_log_and_reaches_the_server(case) -> None:
    assert case["running"], "the recording ended before the note was added"
    assert case["during"].returncode == 0, case["during"].stderr
    assert "note reached the server: 2 entries acknowledged" in case["during"].stdout
    assert re.search(r"added 2 entries to encounter \S+ \(log seq \d+, log seq \d+\)",
                     case["during"].stderr)
    lines = jsonl(case["out"] / "log.jsonl")
    entries = [json.loads(line) for line in lines]
    events = [e["event"] for e in entries]
    assert events[0] == "start" and events[-1] == "stop"  # the stop still closes the log
    note_at = events.index("note")
    assert events[note_at + 1] == "location" and note_at < events.index("stop")
    note, place = entries[note_at], entries[note_at + 1]
    assert note["text"] == DURING and note["at"] == place["at"]
    assert (place["lat"], place["lon"], place["accuracy"]) == (40.7128, -74.006, 12.5)
    # byte for byte what the writer makes: escapes, not raw control characters
    assert lines[note_at] == encode_entry(note).decode()
    assert "\\u001b[2J" in lines[note_at] and "\x1b" not in "".join(lines)
    # every seq of the log stream made by two processes is there once, in order, none missing
    logged = [r for r in outbox_chunks(case["home"].phone) if r["stream"] == "log"]
    assert [r["seq"] for r in logged] == list(range(len(lines)))
    assert all(r["state"] == "acknowledged" for r in outbox_chunks(case["home"].phone))


def test_a_note_after_the_recording_stopped_goes_to_the_addenda(case) -> None:
    assert case["after"].returncode == 0, case["after"].stderr
    assert "note reached the server: 1 entry acknowledged" in case["after"].stdout
    assert "recording of this encounter has stopped" in case["after"].stderr
    assert "addenda seq 0" in case["after"].stderr
    [line] = jsonl(case["out"] / "addenda.jsonl")
    assert json.loads(line) | {"at": None} == {"at": None, "event": "note", "text": AFTER}
    verified = case["verified"]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "addenda: seq 0 (1 chunk), open: notes added after the recording stopped" in \
        verified.stdout
    assert "cut off" not in verified.stdout.lower()


def test_the_report_lists_notes_and_locations_in_local_time_escaped(case) -> None:
    done = case["decrypted"]
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((case["out"] / "report.json").read_text())
    notes = report["notes"]
    assert [(n["event"], n["stream"], n["after_stop"]) for n in notes] == [
        ("note", "log", False), ("location", "log", False), ("note", "addenda", True)]
    assert notes[0]["text"] == DURING.replace("\x1b", "\\x1b")  # safe_text, as all of it
    assert notes[0]["time"]["local"] and notes[0]["time"]["utc"].endswith(" UTC")
    assert (notes[1]["lat"], notes[1]["lon"], notes[1]["accuracy"]) == (40.7128, -74.006, 12.5)
    assert notes[2]["text"] == AFTER
    page = (case["out"] / "report.html").read_text()
    section = page.split("<h2>Notes and locations</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Badge 4471 &lt;script&gt;alert(1)&lt;/script&gt; \\x1b[2J\\x1b[32mOK" in section
    assert "<script>" not in page and "\x1b" not in page
    assert "latitude 40.7128, longitude -74.006 (within 12.5 m)" in section
    assert "the car&#x27;s plate was NYC 1234 &amp; the officer said &quot;move&quot;" in section
    assert "addenda seq 0; added after the recording stopped" in section
    assert notes[0]["time"]["local"] in section
    assert "http" not in section  # coordinates only: no map tiles, nothing fetched


def test_decrypt_prints_the_notes_with_escape_codes_made_visible(case) -> None:
    out = case["decrypted"].stdout
    assert "\x1b" not in out
    assert re.search(r"^Note +\S+ \S+ \S+: Badge 4471 <script>alert\(1\)</script> "
                     r"\\x1b\[2J\\x1b\[32mOK: nothing was altered\\x1b\[0m$", out, re.M)
    assert re.search(r"^Location +.*: latitude 40.7128, longitude -74.006 \(within 12.5 m\)$",
                     out, re.M)
    assert re.search(r"^Note +.* \(added after the recording stopped\): Written after", out, re.M)


def test_the_js_writer_makes_the_same_bytes_from_what_the_cli_wrote(case) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (apt-get install nodejs): web/ shares the event log writer")
    lines = jsonl(case["out"] / "log.jsonl") + jsonl(case["out"] / "addenda.jsonl")
    script = ("import {encodeEntry, parseEntry} from './src/protocol/eventlog.js';"
              "let t='';process.stdin.on('data',d=>t+=d).on('end',()=>process.stdout.write("
              "t.split('\\n').filter(Boolean).map(l=>encodeEntry(parseEntry(l))).join('')));")
    done = subprocess.run([node, "--input-type=module", "-e", script], cwd=ROOT / "web",
                          input="".join(lines), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "".join(lines)


@pytest.mark.parametrize(("args", "message"), [
    (["a note", "--lat", "40.7"], "give both --lat and --lon"),
    (["a note", "--lat", "90.5", "--lon", "0"], "latitude must be between -90 and 90 degrees"),
    (["a note", "--lat", "0", "--lon", "-180.5"], "longitude must be between -180 and 180"),
    (["a note", "--lat", "nan", "--lon", "0"], "latitude must be between -90 and 90 degrees"),
    (["a note", "--lat", "1", "--lon", "1", "--accuracy", "-3"], "accuracy must be a distance"),
    (["a note", "--accuracy", "3"], "--accuracy belongs to a location"),
    ([""], "the note is empty"),
    ([" \n\t "], "the note is empty"),
    (["x" * 2001], "the note is 2001 characters long; at most 2000"),
])
def test_refused_notes_exit_2_and_queue_nothing(case, args: list[str], message: str) -> None:
    phone = case["home"].phone
    before = outbox_chunks(phone)
    done = cli(phone, "note", case["encounter"], *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert outbox_chunks(phone) == before


def test_a_note_for_an_encounter_not_begun_here_is_refused(case) -> None:
    phone = case["home"].phone
    before = outbox_chunks(phone)
    done = cli(phone, "note", "0b3c6a1e-7f2d-4c59-9a41-5d8e2f1b7c60", "a note")
    assert done.returncode == 2
    assert "is not known on this device" in done.stderr
    assert outbox_chunks(phone) == before


def test_a_note_without_network_says_so_exits_3_and_waits_in_the_outbox(make_server,
                                                                         tmp_path: Path) -> None:
    server = make_server()
    phone = tmp_path / "phone"
    register(phone, server.url)
    recorded = cli(phone, "record", "-", "--chunk-bytes", "4096", stdin=b"x" * 5000)
    assert recorded.returncode == 0, recorded.stderr
    encounter = recorded.stdout.split()[0]
    server.stop()
    done = cli(phone, "note", encounter, "Badge 4471", env={"SAFEHOLD_SYNC_PATIENCE": "1"})
    assert done.returncode == 3, done.stderr
    assert "the server is unreachable" in done.stderr
    assert "the note did NOT reach the server yet; it is saved on this device" in done.stderr
    assert "note reached the server" not in done.stdout
    [waiting] = [r for r in outbox_chunks(phone) if r["state"] != "acknowledged"]
    assert (waiting["stream"], waiting["seq"], waiting["state"]) == ("addenda", 0, "queued")
    server.start()
    synced = cli(phone, "sync")
    assert synced.returncode == 0, synced.stderr
    assert all(r["state"] == "acknowledged" for r in outbox_chunks(phone))
