"""report.html / report.json / report.pdf as a judge reads them (issue 14).

At the top: when the recording started and ended and how long it lasted, in the local time zone
of the computer that ran decrypt (named) and in UTC; the owner by the name the contact knows;
a timeline picture with its gaps and cut-off; output files named by their content; a PDF of the
same page when Chromium is installed, and a plain statement when it is not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from browserkit import chromium, colours, hex_rgb, screenshot
from bundlekit import run_cli, scenario

from sync.report.media_types import sniff
from tests.synckit import cli, register

NEW_YORK = {"TZ": "America/New_York"}
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom"
WEBM = (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
        b"\x42\x82\x84webm")


def test_a_contacts_report_names_the_owner_and_the_files_and_shows_local_time(
        live_server, tmp_path: Path) -> None:
    phone, mom = tmp_path / "phone", tmp_path / "mom"
    register(phone, live_server.url)
    invited = cli(phone, "invite", "--long", "--name", "Mom", "--policy", "immediate")
    assert run_cli("keygen", "-o", tmp_path / "mom.key").returncode == 0
    joined = run_cli("contact", "join", invited.stdout.strip(), "--server", live_server.url,
                     "--identity", tmp_path / "mom.key", "--name", "Alex", "--state", mom)
    assert joined.returncode == 0, joined.stderr
    assert cli(phone, "contacts").returncode == 0
    media = M4A + os.urandom(30_000)
    recorded = cli(phone, "record", "-", "--chunk-bytes", "8192", stdin=media)
    encounter = recorded.stdout.strip()
    assert run_cli("fetch", encounter, "-o", tmp_path / "case", "--state", mom).returncode == 0

    out = tmp_path / "out"
    done = run_cli("decrypt", tmp_path / "case", "-i", tmp_path / "mom.key", "-o", out,
                   "--state", mom, "--no-pdf", env=NEW_YORK)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "audio.m4a").read_bytes() == media
    assert f"Wrote      {out / 'audio.m4a'}: {len(media)} bytes" in done.stdout
    assert "No PDF     not asked for (--no-pdf)" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"][0] | {"sha256": None} == {
        "file": "audio.m4a", "kind": "MPEG-4 audio (M4A)", "size": len(media), "sha256": None}
    assert report["devices"][0]["name"] == "Alex"
    assert report["time_zone"]["name"] == "America/New_York"
    assert report["time_zone"]["utc_offset"] in ("-05:00", "-04:00")
    summary = report["summary"]
    assert summary["started"]["local"].endswith((" EST", " EDT"))
    assert summary["started"]["utc"].endswith(" UTC") and summary["cut_off"] == []
    assert summary["duration_seconds"] >= 0 and summary["duration"].endswith(" s")
    assert report["pdf"] == {"file": None, "why": "not asked for (--no-pdf)"}
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True,
                             text=True)
    assert checked.returncode == 0 and "audio.m4a: OK" in checked.stdout
    page = (out / "report.html").read_text()
    glance = page[page.index("<h2>At a glance</h2>"):page.index("<h2>Timeline</h2>")]
    assert summary["started"]["local"] in glance and summary["ended"]["utc"] in glance
    assert "America/New_York" in glance and "Alex (key " in glance and "audio.m4a" in glance
    # A recording this short (about a second) still gets a time axis (at least its two ends).
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert len(re.findall(r'text-anchor="middle">\d\d:\d\d:\d\d(?:\.\d{3})?<', svg)) >= 2
    # Mom's own reads of the encounter are "you", not her contact id.
    access = page[page.index("<h2>5. Who else read it</h2>"):page.index("<h2>6.")]
    assert "<td>you</td>" in access and report["reader_contact"] not in access


def test_the_timeline_picture_shows_gaps_and_the_cut_off_and_prints_to_pdf(
        tmp_path: Path) -> None:
    sc = scenario(tmp_path / "bundle",
                  {"audio": M4A + os.urandom(60_000), "video": WEBM + os.urandom(50_000),
                   "raw": os.urandom(9000), "log": [b'{"event":"start"}']},
                  chunk_bytes=4096, cut_off={"audio"}, never_sent={"video": {4, 5, 6}})
    (tmp_path / "id.key").write_text(sc.identity + "\n")
    out = tmp_path / "out"
    done = run_cli("decrypt", sc.bundle, "-i", tmp_path / "id.key", "-o", out, env=NEW_YORK)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(("report", "SHA"))) \
        == ["audio.m4a", "log.jsonl", "raw.bin", "video.webm"]  # random bytes stay .bin
    page = (out / "report.html").read_text()
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert "missing seq 4-6" in svg and "cut off" in svg and svg.count(">end</text>") == 3
    assert "https://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["cut_off"] == ["audio"]
    assert report["summary"]["with_gaps"] == ["video"]

    chromium()  # the rest needs Debian's chromium (CI installs it)
    shot = screenshot((out / "report.html").as_uri(), tmp_path / "report.png", height=1100)
    seen = colours(shot)
    assert seen[hex_rgb("#2f6db5")] > 2000  # the audio lane's bar
    assert seen[hex_rgb("#7b3fa0")] > 2000  # the video lane's two bars around the gap
    assert seen[hex_rgb("#c62828")] > 300  # the hatched gap and the cut-off line
    assert report["pdf"]["file"] == "report.pdf"
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert "report.pdf" in (out / "SHA256SUMS").read_text()
    assert "(and report.json, report.pdf, SHA256SUMS)" in done.stdout


def test_without_chromium_decrypt_says_no_pdf_was_made_and_why(tmp_path: Path) -> None:
    sc = scenario(tmp_path / "bundle", {"audio": os.urandom(5000)})
    (tmp_path / "id.key").write_text(sc.identity + "\n")
    out = tmp_path / "out"
    done = run_cli("decrypt", sc.bundle, "-i", tmp_path / "id.key", "-o", out,
                   env={"SAFEHOLD_CHROMIUM": ""})
    assert done.returncode == 0, done.stderr
    assert "No PDF     no Chromium was found (install Debian's chromium, or print " \
           "report.html to PDF from any browser)" in done.stdout
    assert not (out / "report.pdf").exists()
    assert json.loads((out / "report.json").read_text())["pdf"]["file"] is None
    assert (out / "audio.bin").is_file()


def test_content_signatures_name_the_usual_containers_and_nothing_else() -> None:
    mp3_frame = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
    cases = {M4A: "m4a", WEBM: "webm", b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska": "mkv",
             b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00": "mp4",
             b"\x00\x00\x00\x18ftyp3gp4\x00\x00\x00\x00": "3gp",
             b"OggS\x00\x02" + bytes(22) + b"OpusHead": "ogg",
             b"RIFF\x24\x00\x00\x00WAVEfmt ": "wav", b"fLaC\x00\x00\x00\x22": "flac",
             b"#!AMR\n": "amr", b"ID3\x04\x00\x00": "mp3", mp3_frame * 2: "mp3"}
    for head, extension in cases.items():
        assert (sniff(head) or ("bin",))[0] == extension, head[:16]
    assert sniff(mp3_frame + b"\x00" * 10) is None  # one frame header alone is not enough
    assert sniff(b"RIFF\x24\x00\x00\x00AVI LIST") is None
    randoms = [os.urandom(4096) for _ in range(3000)]
    assert [r[:8] for r in randoms if sniff(r) is not None] == []
