"""bench/sync.py: draining the outbox vs the plainest possible client, in the same run.

Records CHUNKS media chunks offline (plus their event-log entries, so >= 2,000 chunks queued),
starts two fresh Safehold servers under gunicorn (same settings, own data folders), then:
  - baseline: the plainest client - one requests.Session, PUT the encounter, then PUT every chunk
    of the outbox in order, one after the other, no receipt checks at all;
  - ours:     `Uploader.drain()` as `safehold device sync` runs it: server-key handshake, holdings
    check, several uploads at once, every receipt verified (signature, inclusion, consistency)
    and committed to the outbox before a chunk counts as acknowledged.
Prints both times and the ratio baseline_time / our_time (goal >= 1.0).

Usage: .venv/bin/python bench/sync.py [--chunks 1000] [--chunk-kib 16] [--workers 8] [--dir D]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crypto.signing import sign_raw  # noqa: E402
from schemas.statements import register_statement  # noqa: E402
from sync.api import ApiClient  # noqa: E402
from sync.device.account import client_for, device_login, register  # noqa: E402
from sync.device.state import Settings, StateFolder  # noqa: E402
from sync.upload.receipts import ReceiptVerifier  # noqa: E402
from sync.upload.recorder import Recorder, RecordOptions, Sealer  # noqa: E402
from sync.upload.uploader import Uploader  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
        env.update({"SAFEHOLD_DATA_DIR": str(data_dir), "SAFEHOLD_PUBLIC_URL": self.url,
                    "SAFEHOLD_RATE_PER_MINUTE": "1000000"})
        data_dir.mkdir(parents=True)
        self.log = open(data_dir.parent / f"{data_dir.name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "server/gunicorn_conf.py",
             "--bind", f"127.0.0.1:{self.port}", "server.wsgi:app"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/v1/server", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit(f"gunicorn did not start; see {self.log.name}")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def record_offline(state: StateFolder, settings: Settings, chunks: int, chunk_bytes: int) -> str:
    outbox = state.outbox()
    sealer = Sealer(state.device_signing_key(), [settings.recovery_recipient])
    recorder = Recorder(outbox, sealer, RecordOptions(chunk_bytes=chunk_bytes))
    encounter = recorder.begin()
    recorder.run(io.BufferedReader(io.BytesIO(os.urandom(chunks * chunk_bytes))))
    outbox.close()
    return encounter


def plain_client(state: StateFolder, settings: Settings, url: str, encounter: str) -> float:
    """Sequential PUTs of the same chunks to another server; returns seconds for the chunks."""
    name = url.removeprefix("http://")
    key = state.device_signing_key()
    statement = register_statement(name, settings.account_id, settings.device_id,
                                   settings.recovery_recipient)
    requests.post(url + "/v1/accounts", timeout=30, json={
        "account_id": settings.account_id, "device_id": settings.device_id,
        "device_key": settings.device_key, "recovery_recipient": settings.recovery_recipient,
        "signature": base64.b64encode(sign_raw(statement, key)).decode()}).raise_for_status()
    token = device_login(settings.device_id, key, name)(ApiClient(url))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    outbox = state.outbox()
    rows = outbox.db.query("SELECT c.* FROM chunks c ORDER BY priority, seq")
    started = time.perf_counter()
    session.put(f"{url}/v1/encounters/{encounter}", json={"started_at": "2026-11-28T03:30:00.000Z"},
                timeout=30).raise_for_status()
    for row in rows:
        session.put(f"{url}/v1/encounters/{row['encounter']}/streams/{row['stream']}/chunks/"
                    f"{row['seq']}", data=row["body"], timeout=30, headers={
                        "Content-Type": "application/octet-stream",
                        "Safehold-Descriptor": base64.b64encode(
                            row["descriptor"].encode()).decode()}).raise_for_status()
    elapsed = time.perf_counter() - started
    outbox.close()
    return elapsed


def our_drain(state: StateFolder, settings: Settings, workers: int) -> tuple[float, int]:
    outbox = state.outbox()
    api = client_for(state, settings)
    api.server_info()  # warm the connection as the baseline's registration did
    verifier = ReceiptVerifier(outbox, settings.server_key, settings.server_name,
                               api.consistency)
    uploader = Uploader(outbox, api, verifier, settings.server_key, workers=workers)
    started = time.perf_counter()
    report = uploader.drain()
    elapsed = time.perf_counter() - started
    if report.remaining or report.untrusted or report.refused or report.fatal:
        raise SystemExit(f"drain incomplete: {report}")
    outbox.close()
    print(f"  (ours: {report.acknowledged} receipts verified, {report.consistency_requests} "
          f"needed a consistency request, {report.retries} retries)")
    return elapsed, report.acknowledged


def one_round(work: Path, args: argparse.Namespace, plain_first: bool) -> tuple[float, float]:
    """Fresh servers, a fresh phone, CHUNKS recorded offline; (plain seconds, our seconds)."""
    ours_server = Gunicorn(work / "ours")
    plain_server = Gunicorn(work / "plain")
    try:
        state = StateFolder(work / "phone")
        settings = register(state, ours_server.url)
        encounter = record_offline(state, settings, args.chunks, args.chunk_kib * 1024)
        queued = state.outbox().remaining()
        times: dict[str, float] = {}
        for who in (("plain", "ours") if plain_first else ("ours", "plain")):
            if who == "plain":
                times[who] = plain_client(state, settings, plain_server.url, encounter)
            else:
                times[who], sent = our_drain(state, settings, args.workers)
                assert sent == queued, (sent, queued)
        print(f"  {queued} chunks: baseline {times['plain']:6.2f} s "
              f"({queued / times['plain']:5.1f}/s)   ours {times['ours']:6.2f} s "
              f"({queued / times['ours']:5.1f}/s)   ratio {times['plain'] / times['ours']:.2f}",
              flush=True)
        return times["plain"], times["ours"]
    finally:
        ours_server.stop()
        plain_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000, help="media chunks (log adds as many)")
    parser.add_argument("--chunk-kib", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4, help="as `safehold device sync`")
    parser.add_argument("--rounds", type=int, default=3, help="alternating which goes first")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="safehold-bench-sync-"))
    print(f"{args.chunks} x {args.chunk_kib} KiB media chunks + their event-log entries, queued "
          f"offline; gunicorn servers (server/gunicorn_conf.py); ours with {args.workers} at once")
    try:
        results = [one_round(work / f"round{i}", args, plain_first=i % 2 == 0)
                   for i in range(args.rounds)]
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    plain = statistics.median(r[0] for r in results)
    ours = statistics.median(r[1] for r in results)
    print(f"median baseline (sequential PUTs, no checks): {plain:6.2f} s")
    print(f"median ours (drain, verified receipts):        {ours:6.2f} s")
    print(f"ratio baseline_time / our_time = {plain / ours:.2f} (goal >= 1.0)")


if __name__ == "__main__":
    main()
