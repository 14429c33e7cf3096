"""bench/exposure.py: how long recorded audio and video stay only on the phone, on a jammed uplink.

The scenario of issue 9, as a user would run it: a real `safehold serve` behind a shaped link
(tests/shapedlink.py: 64 KiB/s up, 200 KiB/s down, 150 ms each way, optionally 2 % segment
loss), a device registered through it, and two `safehold device record --rate` processes on
the same state folder recording one encounter live - audio at 16 KiB/s and video at 96 KiB/s,
both in 2 s chunks - for `--seconds` seconds. Video alone needs more than the link carries, so it
falls behind while recording and catches up after.

Exposure of a chunk = its duration (2 s: the time it was being captured) + the time from sealing
to the verified acknowledgement, both read from the outbox (sealed_at, acknowledged_at). Printed
per stream: p50 / p95 / max, and "video done": seconds from the end of the recording (the last
video chunk sealed) until the last video chunk was acknowledged.

Each variant runs on the code under test (`after`: this checkout) and, with `--before DIR`, on
another checkout (e.g. a worktree of main; its own .venv/bin/python runs its own code), in the
same run, so the two sets of figures share the machine's load. Goal: audio p95 <= 4.0 s while
video shares the link.

Usage: .venv/bin/python bench/exposure.py [--seconds 12] [--before DIR] [--loss 0 0.02]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.shapedlink import shaped  # noqa: E402

KIB = 1024
AUDIO_RATE, VIDEO_RATE = 16 * KIB, 96 * KIB
CHUNK_SECONDS = 2.0
UP, DOWN, DELAY = 64 * KIB, 200 * KIB, 0.150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_of(root: Path) -> str:
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(extra)
    return env


@dataclass
class Figures:
    label: str
    exposure: dict[str, list[float]]
    video_done: float | None
    unacknowledged: int
    stalls: int


def run(root: Path, label: str, seconds: float, loss: float, work: Path) -> Figures:
    python = python_of(root)
    server_port = free_port()
    link = shaped(server_port, UP, DOWN, DELAY, loss).start()
    data = work / "server"
    data.mkdir(parents=True)
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [python, "-m", "cli.main", "serve", "--port", str(server_port)], cwd=root,
        env=clean_env({"SAFEHOLD_DATA_DIR": str(data), "SAFEHOLD_PUBLIC_URL": link.url,
                       "SAFEHOLD_RATE_PER_MINUTE": "100000"}),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{server_port}/v1/server")
        state = work / "phone"
        env = clean_env({"SAFEHOLD_SYNC_PATIENCE": "120", "SAFEHOLD_HTTP_TIMEOUT": "60"})
        device = [python, "-m", "cli.main", "device"]
        subprocess.run([*device, "register", "--server", link.url, "--state", str(state)],
                       cwd=root, env=env, check=True, capture_output=True, timeout=120)
        encounter = str(uuid.uuid4())
        recorders = []
        for stream, rate in (("audio", AUDIO_RATE), ("video", VIDEO_RATE)):
            source = work / f"{stream}.bin"
            source.write_bytes(os.urandom(int(rate * seconds)))
            recorders.append(subprocess.Popen(
                [*device, "record", str(source), "--stream", stream, "--encounter", encounter,
                 "--chunk-bytes", str(int(rate * CHUNK_SECONDS)), "--rate", str(rate),
                 "--state", str(state)],
                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for proc in recorders:
            try:
                proc.wait(timeout=seconds * 12 + 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return measure(label, state / "outbox.db", link.stalls)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
        link.stop()


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"the server at {url} did not start")


def when(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def measure(label: str, outbox: Path, stalls: int) -> Figures:
    db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    rows = db.execute("SELECT stream, sealed_at, acknowledged_at FROM chunks").fetchall()
    db.close()
    exposure: dict[str, list[float]] = {}
    last_video_sealed = last_video_acked = None
    missing = 0
    for stream, sealed_at, acked_at in rows:
        if acked_at is None:
            missing += 1
            continue
        sealed, acked = when(sealed_at), when(acked_at)
        duration = 0.0 if stream == "log" else CHUNK_SECONDS
        exposure.setdefault(stream, []).append(duration + acked - sealed)
        if stream == "video":
            last_video_sealed = max(sealed, last_video_sealed or sealed)
            last_video_acked = max(acked, last_video_acked or acked)
    done = None if last_video_sealed is None or last_video_acked is None or missing \
        else last_video_acked - last_video_sealed
    return Figures(label, exposure, done, missing, stalls)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def show(fig: Figures, loss: float) -> None:
    parts = [f"{fig.label:6} loss={loss:.0%}"]
    for stream in ("audio", "video", "log"):
        values = fig.exposure.get(stream, [])
        if values:
            parts.append(f"{stream} p50 {statistics.median(values):5.1f} s p95 "
                         f"{percentile(values, 0.95):5.1f} s max {max(values):5.1f} s")
    done = "n/a" if fig.video_done is None else f"{fig.video_done:.1f} s"
    parts.append(f"video done {done} after recording ended")
    if fig.unacknowledged:
        parts.append(f"{fig.unacknowledged} chunk(s) NOT acknowledged")
    if fig.stalls:
        parts.append(f"{fig.stalls} loss stalls")
    print("  ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="recording length")
    parser.add_argument("--before", type=Path, help="checkout to compare with (e.g. main)")
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.02])
    args = parser.parse_args()
    print(f"link: {UP // KIB} KiB/s up, {DOWN // KIB} KiB/s down, {DELAY * 1000:.0f} ms each "
          f"way; audio {AUDIO_RATE // KIB} KiB/s + video {VIDEO_RATE // KIB} KiB/s in "
          f"{CHUNK_SECONDS:g} s chunks for {args.seconds:g} s, two `device record` processes")
    with tempfile.TemporaryDirectory(prefix="exposure-") as tmp:
        for loss in args.loss:
            results = []
            for label, root in (("before", args.before), ("after", ROOT)):
                if root is None:
                    continue
                work = Path(tmp) / f"{label}-{loss}"
                results.append(run(root.resolve(), label, args.seconds, loss, work))
                show(results[-1], loss)
            if len(results) == 2 and all(r.exposure.get("audio") for r in results):
                before, after = (percentile(r.exposure["audio"], 0.95) for r in results)
                verdict = "met" if after <= 4.0 else "NOT met"
                print(f"loss={loss:.0%}: audio p95 before/after = {before / after:.1f}x "
                      f"(goal <= 4.0 s {verdict})", flush=True)


if __name__ == "__main__":
    main()
