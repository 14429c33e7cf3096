"""bench/recorder.py: what the recorder page (/record) costs per 1 s slice, beside baselines
measured in the same run.

A live `safehold serve` on loopback; Debian's Chromium (Playwright) with a fake camera and a
440 Hz tone as the fake microphone; a phone set up on the page with one trusted contact (joined
with `safehold contact join`). Then:
  - baseline page: MediaRecorder alone (audio + video, 1 s timeslice, each slice read into an
    ArrayBuffer and dropped) for SECONDS s; main-thread busy time from the DevTools protocol
    (Performance.getMetrics TaskDuration);
  - recorder page: "Start recording" (sound and video) for SECONDS s, then "Stop recording",
    until everything is acknowledged; the same main-thread time; the extra per media slice is
    what seal + sign + IndexedDB commit (and the uploader) cost the main thread; the page's own
    `safehold-seal-*` timeline measures give the wall time from slice to committed chunk;
  - upload exposure: per chunk, device time sealed -> receipt verified and committed (how long
    a piece exists only on the phone), for the page and for `safehold device record` (the CLI,
    1 s chunks of the same size at the same rate) on the same server.

Usage: .venv/bin/python bench/recorder.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import ServerProcess  # noqa: E402
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from synckit import cli  # noqa: E402
from test_web_record import invite_and_join, set_up_phone  # noqa: E402
from webkit import CHROMIUM  # noqa: E402

BASELINE_JS = """async (seconds) => {
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  let slices = 0;
  const recorders = [media.getAudioTracks(), media.getVideoTracks()].map((tracks) => {
    const r = new MediaRecorder(new MediaStream(tracks));
    r.ondataavailable = async (e) => { await e.data.arrayBuffer(); slices += 1; };
    r.start(1000);
    return r;
  });
  await new Promise((done) => setTimeout(done, seconds * 1000));
  await Promise.all(recorders.map((r) => new Promise((done) => { r.onstop = done; r.stop(); })));
  media.getTracks().forEach((t) => t.stop());
  return slices;
}"""

OUTBOX_JS = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("safehold-recorder");
  req.onsuccess = () => {
    const get = req.result.transaction("chunks").objectStore("chunks").getAll();
    get.onsuccess = () => resolve(get.result.map((c) => ({ stream: c.stream, size: c.bytes.length,
      plain: c.plainSize, sealedAt: c.sealedAt, acknowledgedAt: c.acknowledgedAt || null })));
    get.onerror = () => reject(get.error);
  };
  req.onerror = () => reject(req.error);
})"""

MEASURES_JS = """() => performance.getEntriesByType("measure")
  .filter((m) => m.name.startsWith("safehold-seal-")).map((m) => [m.name, m.duration])"""


def tone(path: Path, seconds: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        step = 2 * math.pi * 440 / 48_000
        out.writeframes(b"".join(struct.pack("<h", int(12_000 * math.sin(step * i)))
                                 for i in range(seconds * 48_000)))
    return path


def busy_seconds(cdp: Any) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def page_run(page: Page, cdp: Any, seconds: int) -> tuple[float, list[dict[str, Any]]]:
    page.get_by_label("Sound and video").check()
    before = busy_seconds(cdp)
    page.get_by_role("button", name="Start recording").click()
    time.sleep(seconds)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.get_by_label("Upload status")).to_contain_text(
        "Everything recorded is on the server", timeout=120_000)
    busy = busy_seconds(cdp) - before
    return busy, page.evaluate(OUTBOX_JS)


def offline_run(page: Page, cdp: Any, seconds: int) -> tuple[float, int]:
    """The same recording with every API request refused at once: seal + sign + queue only
    (plus the uploader's few backoff attempts). Then the network returns and it all goes."""
    known = len(page.evaluate(OUTBOX_JS))
    page.route("**/v1/**", lambda route: route.abort("internetdisconnected"))
    before = busy_seconds(cdp)
    page.get_by_role("button", name="Start recording").click()
    time.sleep(seconds)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.get_by_role("button", name="Start recording")).to_be_visible()
    busy = busy_seconds(cdp) - before
    media = [c for c in page.evaluate(OUTBOX_JS)[known:] if c["stream"] not in ("log",)]
    page.unroute("**/v1/**")
    page.reload()
    expect(page.get_by_label("Upload status")).to_contain_text(
        "Everything recorded is on the server", timeout=120_000)
    return busy, len([c for c in media if c["plain"]])


def cli_exposure(server: ServerProcess, work: Path, seconds: int, chunk: int) -> list[float]:
    phone = work / "cli-phone"
    assert cli(phone, "register", "--server", server.url).returncode == 0
    source = work / "media.bin"
    source.write_bytes(bytes(range(256)) * (seconds * chunk // 256 + 1))
    done = cli(phone, "record", str(source), "--chunk-bytes", str(chunk), "--rate", str(chunk),
               timeout=seconds * 3 + 60)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(phone / "outbox.db")
    rows = db.execute("SELECT sealed_at, acknowledged_at FROM chunks WHERE stream != 'log'"
                      " AND acknowledged_at IS NOT NULL").fetchall()
    db.close()
    return [(stamp(b) - stamp(a)) * 1000 for a, b in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="safehold-bench-recorder-") as tmp:
        work = Path(tmp)
        wav = tone(work / "tone.wav", args.seconds + 10)
        server = ServerProcess(work / "data", env={"SAFEHOLD_RATE_PER_MINUTE": "100000"}).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True,
                    args=["--no-sandbox", "--disable-dev-shm-usage",
                          "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                          f"--use-file-for-fake-audio-capture={wav}"])
                page = browser.new_context().new_page()
                page.set_default_timeout(60_000)
                set_up_phone(page, server)
                invite_and_join(page, server, work)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                before = busy_seconds(cdp)
                base_slices = page.evaluate(BASELINE_JS, args.seconds)
                base_busy = busy_seconds(cdp) - before
                busy, chunks = page_run(page, cdp, args.seconds)
                measures = page.evaluate(MEASURES_JS)
                offline_busy, offline_slices = offline_run(page, cdp, args.seconds)
                browser.close()
            media = [c for c in chunks if c["stream"] != "log" and c["plain"]]
            exposure = [(stamp(c["acknowledgedAt"]) - stamp(c["sealedAt"])) * 1000
                        for c in chunks if c["acknowledgedAt"] and c["stream"] != "log"]
            audio = statistics.median(c["plain"] for c in media if c["stream"] == "audio")
            cli_exp = cli_exposure(server, work, args.seconds, int(audio))
        finally:
            server.stop()
    report(args.seconds, base_slices, base_busy, len(media), busy, measures, exposure, cli_exp,
           media)
    per_offline = offline_busy * 1000 / max(1, offline_slices)
    print(f"main thread, recorder page with the network cut (seal+sign+queue only): "
          f"{per_offline:.2f} ms per slice ({offline_slices} slices); extra over the baseline "
          f"{per_offline - base_busy * 1000 / max(1, base_slices):.2f} ms per slice")


def report(seconds: int, base_slices: int, base_busy: float, slices: int, busy: float,
           measures: list[list[Any]], exposure: list[float], cli_exp: list[float],
           media: list[dict[str, Any]]) -> None:
    per_base = base_busy * 1000 / max(1, base_slices)
    per_page = busy * 1000 / max(1, slices)
    for stream in ("audio", "video"):
        sizes = [c["plain"] for c in media if c["stream"] == stream]
        if sizes:
            kib = statistics.median(sizes) / 1024
            print(f"{stream}: {len(sizes)} slices, median {kib:.1f} KiB")
    print(f"main thread, baseline (MediaRecorder only): {per_base:.2f} ms per slice "
          f"({base_slices} slices in {seconds} s)")
    print(f"main thread, recorder page (seal+sign+queue+upload): {per_page:.2f} ms per slice "
          f"({slices} slices); extra {per_page - per_base:.2f} ms per slice, "
          f"ratio {per_page / max(per_base, 1e-9):.2f}x")
    for stream in ("audio", "video", "log"):
        walls = [d for n, d in measures if n == f"safehold-seal-{stream}"]
        if walls:
            print(f"slice -> committed (wall, {stream}): median {statistics.median(walls):.1f} ms, "
                  f"p95 {pct(walls, 0.95):.1f} ms")
    if exposure and cli_exp:
        print(f"upload exposure (sealed -> receipt verified), page: median "
              f"{statistics.median(exposure):.0f} ms, p95 {pct(exposure, 0.95):.0f} ms; "
              f"CLI baseline: median {statistics.median(cli_exp):.0f} ms, "
              f"p95 {pct(cli_exp, 0.95):.0f} ms; ratio of medians "
              f"{statistics.median(exposure) / max(statistics.median(cli_exp), 1e-9):.2f}x")


if __name__ == "__main__":
    main()
