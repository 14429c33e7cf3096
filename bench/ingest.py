"""Chunk ingest under gunicorn on loopback, beside a baseline run in the same script.

For each chunk size, N concurrent clients (one phone each: its own account, device, encounter
and keep-alive connection) PUT pre-sealed age chunks to Safehold under gunicorn with the
Procfile's config. The baseline is a bare WSGI app (bench/baseline_app.py) under the same
gunicorn settings that only writes, fsyncs and renames each body, fed the same bodies by the same
client code. Sealing happens before the clock starts: it is the phone's cost, not the server's.

    .venv/bin/python bench/ingest.py            # 2,000 x 64 KiB and 2,000 x 1 MiB
    .venv/bin/python bench/ingest.py --quick    # a smoke run (200 of each)

Goal (issue 3): Safehold >= 0.6 of the baseline's throughput; p99 ack latency < 50 ms at 64 KiB.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import requests  # noqa: E402
from helpers import PYTHON, Device, b64  # noqa: E402
from log_audit import Gunicorn  # noqa: E402

KIB, MIB = 1024, 1024 * 1024
GUNICORN_ENV: dict[str, str] = {}  # settings both servers get alike (--threads)


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Result:
    label: str
    chunks: int
    seconds: float
    latencies: list[float]
    payload_bytes: int

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / self.seconds / 1e6

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


class SafeholdServer(Gunicorn):
    def __init__(self, data_dir: Path, workers: int | None) -> None:
        env = {"SAFEHOLD_RATE_PER_MINUTE": "100000000", "SAFEHOLD_MAX_CHUNK_BYTES": str(2 * MIB),
               **GUNICORN_ENV}
        super().__init__(data_dir, workers=workers or 0, env=env)

    def command(self) -> list[str]:
        workers = ["--workers", str(self.workers)] if self.workers else []
        return [PYTHON, "-m", "gunicorn", "--config", "server/gunicorn_conf.py",
                "--bind", self.name, *workers, "server.wsgi:app"]


class BaselineServer(SafeholdServer):
    """The same gunicorn settings, serving bench/baseline_app.py; answers GET /v1/server too."""

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["BASELINE_DIR"] = str(self.data_dir / "baseline")
        return env

    def command(self) -> list[str]:
        command = super().command()
        return [*command[:-1], "--pythonpath", str(ROOT / "bench"), "baseline_app:app"]


@dataclass
class Phone:
    """One client: a device with one encounter of pre-sealed chunks (made offline, as a phone
    records without a network), registered afresh on each server it is run against."""

    device: Device
    encounter: str
    chunks: list[tuple[int, bytes, str]]  # seq, age file, signed descriptor note

    @classmethod
    def sealed(cls, count: int, size: int) -> Phone:
        device = Device("http://offline.invalid", "offline.invalid")
        encounter, payload = str(uuid.uuid4()), os.urandom(size)
        chunks = []
        for seq in range(count):
            body, note = device.seal(encounter, "video", seq, final=False, payload=payload)
            chunks.append((seq, body, note))
        return cls(device, encounter, chunks)

    def requests_for(self, server: Gunicorn) -> list[Request]:
        """Register, log in and open the encounter on `server`; then the chunk PUTs."""
        self.device.url, self.device.server_name = server.url, server.name
        self.device.session = requests.Session()
        assert self.device.register().status_code == 201
        self.device.login()
        response = self.device.call("PUT", f"/v1/encounters/{self.encounter}",
                                    json={"started_at": "2026-11-28T03:30:00.000Z"})
        assert response.status_code == 201, response.text
        headers = {"Authorization": f"Bearer {self.device.token}",
                   "Content-Type": "application/octet-stream"}
        return [Request(f"/v1/encounters/{self.encounter}/streams/video/chunks/{seq}", body,
                        {**headers, "Safehold-Descriptor": b64(note.encode("utf-8"))})
                for seq, body, note in self.chunks]

    def bare_requests(self) -> list[Request]:
        return [Request(f"/{self.encounter}/video/{seq}", body,
                        {"Content-Type": "application/octet-stream"})
                for seq, body, _note in self.chunks]


def run_clients(port: int, per_client: list[list[Request]], label: str,
                payload_size: int) -> Result:
    """Every client sends its requests one after another on one keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in per_client]
    failures: list[str] = []
    start_line = threading.Barrier(len(per_client) + 1)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start_line.wait()
        for request in per_client[index]:
            began = time.perf_counter()
            conn.request("PUT", request.path, body=request.body, headers=request.headers)
            response = conn.getresponse()
            response.read()
            latencies[index].append(time.perf_counter() - began)
            if response.status not in (200, 201):
                failures.append(f"{request.path}: {response.status}")
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(per_client))]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{label}: {len(failures)} uploads failed, e.g. {failures[:3]}")
    chunks = sum(len(c) for c in per_client)
    return Result(label, chunks, seconds, [x for xs in latencies for x in xs],
                  chunks * payload_size)


def run_safehold(phones: list[Phone], size: int, workers: int | None, scratch: Path) -> Result:
    server = SafeholdServer(Path(tempfile.mkdtemp(prefix="safehold-", dir=scratch)), workers)
    server.start()
    try:
        per_client = [phone.requests_for(server) for phone in phones]
        warm_up(server.port, len(phones))
        return run_clients(server.port, per_client, "safehold", size)
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def run_baseline(phones: list[Phone], size: int, workers: int | None, scratch: Path) -> Result:
    server = BaselineServer(Path(tempfile.mkdtemp(prefix="baseline-", dir=scratch)), workers)
    server.start()
    try:
        warm_up(server.port, len(phones))
        return run_clients(server.port, [p.bare_requests() for p in phones], "baseline", size)
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def bench_size(size: int, count: int, clients: int, workers: int | None, rounds: int,
               scratch: Path) -> tuple[list[Result], list[Result]]:
    print(f"  sealing {count} chunks of {size // KIB} KiB for {clients} phones ...", flush=True)
    phones = [Phone.sealed(count // clients, size) for _ in range(clients)]
    ours, base = [], []
    for _ in range(rounds):  # alternate, so a change in machine load hits both alike
        base.append(run_baseline(phones, size, workers, scratch))
        ours.append(run_safehold(phones, size, workers, scratch))
    return ours, base


def warm_up(port: int, clients: int) -> None:
    for _ in range(clients * 2):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/server")
        conn.getresponse().read()
        conn.close()


def median_run(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.chunks_per_s)[len(results) // 2]


def report(size: int, ours_runs: list[Result], base_runs: list[Result]) -> None:
    ours, base = median_run(ours_runs), median_run(base_runs)
    print(f"\n{size // KIB} KiB chunks, {ours.chunks} per run, median of {len(ours_runs)} run(s)")
    print(f"  {'':9} {'chunks/s':>9} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in (base, ours):
        print(f"  {r.label:9} {r.chunks_per_s:9.1f} {r.mb_per_s:8.1f} "
              f"{r.percentile(50):8.2f} {r.percentile(99):8.2f}")
    ratio = ours.chunks_per_s / base.chunks_per_s
    verdict = "meets" if ratio >= 0.6 else "BELOW"
    print(f"  throughput ratio safehold/baseline = {ratio:.2f} ({verdict} the 0.6 goal)")
    if size <= 64 * KIB:
        p99 = ours.percentile(99)
        print(f"  p99 ack latency {p99:.1f} ms ({'meets' if p99 < 50 else 'ABOVE'} the 50 ms goal)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 chunks per size, not 2,000")
    parser.add_argument("--count", type=int, help="chunks per size (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent phones (default 8)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the config's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: the config's)")
    parser.add_argument("--sizes", default="64,1024", help="chunk sizes in KiB (default 64,1024)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternating baseline/safehold runs per size; the median is shown")
    parser.add_argument("--scratch", type=Path, help="where the servers keep data (removed)")
    args = parser.parse_args()
    count = args.count or (200 if args.quick else 2000)
    if args.threads:
        GUNICORN_ENV["SAFEHOLD_THREADS"] = str(args.threads)
    count -= count % args.clients
    scratch = Path(tempfile.mkdtemp(prefix="safehold-bench-", dir=args.scratch))
    print(f"{count} chunks per size from {args.clients} clients; gunicorn "
          f"{args.workers or 'default'} workers x {args.threads or 'default'} threads; "
          f"{os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (other work on the machine skews both runs); data in "
          f"{scratch}", flush=True)
    try:
        for size_kib in (int(s) for s in args.sizes.split(",")):
            ours, base = bench_size(size_kib * KIB, count, args.clients, args.workers,
                                    args.rounds, scratch)
            report(size_kib * KIB, ours, base)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
