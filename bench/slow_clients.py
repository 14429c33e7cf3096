"""Chunk acknowledgement latency while 200 slow clients hold connections, beside the same
recording with no slow clients, under the production gunicorn config, for the configured worker
class and (as the "before") gunicorn's gthread worker, all in one run on loopback.

    .venv/bin/python bench/slow_clients.py [--chunks 40]

The slow clients are those of tests/test_ops_slow_clients.py (a third idle after half a request
head, a third trickling a head, a third trickling a chunk body; bounded in count and time).
A chunk whose upload fails or takes 10 s counts as 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import test_ops_slow_clients as slow  # noqa: E402
from helpers import ServerProcess, registered_device  # noqa: E402


def run(worker_class: str | None, attacked: bool, chunks: int, scratch: Path) -> list[float]:
    if worker_class:
        os.environ["GUNICORN_CMD_ARGS"] = f"--worker-class {worker_class}"
    else:
        os.environ.pop("GUNICORN_CMD_ARGS", None)
    server = ServerProcess(Path(tempfile.mkdtemp(dir=scratch)) / "data", kind="gunicorn",
                           env={"SAFEHOLD_RATE_PER_MINUTE": "100000"}).start()
    try:
        phone = registered_device(server.url, server.name)
        encounter = phone.new_encounter()
        attack = slow.Attack(server, f"/v1/encounters/{encounter}/streams/video/chunks/0",
                             str(phone.token))
        attacker = threading.Thread(target=attack.run, daemon=True)
        if attacked:
            attacker.start()
            deadline = time.monotonic() + 20
            while attack.open_now < slow.CONNECTIONS and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1)
        slow.CHUNKS = chunks
        try:
            return slow.record(phone, encounter)
        finally:
            attack.stop.set()
            if attacked:
                attacker.join(timeout=30)
    finally:
        server.stop()
        os.environ.pop("GUNICORN_CMD_ARGS", None)


def line(label: str, latencies: list[float]) -> str:
    p99 = statistics.quantiles(latencies, n=100)[98]
    return (f"  {label:<34} p50 {statistics.median(latencies) * 1000:8.1f} ms   "
            f"p99 {p99 * 1000:8.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=40, help="chunks recorded per run")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="safehold-slow-bench-"))
    print(f"{args.chunks} chunks per run, {slow.CONNECTIONS} slow clients; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    for label, worker_class in (("configured worker", None), ("gthread (before)", "gthread")):
        quiet = run(worker_class, False, args.chunks, scratch)
        loud = run(worker_class, True, args.chunks, scratch)
        results[label] = (quiet, loud)
        print(line(f"{label}, no slow clients", quiet), flush=True)
        print(line(f"{label}, 200 slow clients", loud), flush=True)
    for label, (quiet, loud) in results.items():
        ratio = statistics.quantiles(loud, n=100)[98] / statistics.quantiles(quiet, n=100)[98]
        print(f"  {label}: p99 under slow clients / p99 without = {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
