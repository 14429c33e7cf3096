"""Scale-out figures: throughput and p99 through 1 and 2 API nodes, and API CPU per chunk for
proxied vs presigned (direct-to-S3) uploads, each beside a baseline measured in the same run.

Nodes share one data folder (SQLite; its writer lock is a file lock on this host) and one moto
S3 bucket, behind tests/faultproxy.py's round-robin proxy; each node is gunicorn with one worker.
API CPU is the user+system time of every process of the node(s) (from /proc), divided by chunks.
The baseline for the CPU figure is the proxied PUT (ratio presigned/proxied); for throughput it
is 1 node (ratio 2 nodes / 1 node).

With --database-url (a PostgreSQL server URL) every run gets a fresh database of its own on that
server, given to each node as SAFEHOLD_DATABASE_URL, and dropped afterwards; without it, SQLite.

    .venv/bin/python bench/scaleout.py --count 300 --clients 4 --size 64
    .venv/bin/python bench/scaleout.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import boto3  # noqa: E402
from faultproxy import RoundRobinProxy  # noqa: E402
from helpers import Device, b64, chunk_path  # noqa: E402
from log_audit import Gunicorn  # noqa: E402
from moto_s3 import MOTO_ENV  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(session_ids: list[int]) -> float:
    """user + system CPU of every live process in these sessions (gunicorn master + workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in session_ids:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def upload(device: Device, encounter: str, seq: int, body: bytes, note: str,
           direct: bool) -> None:
    header = {"Safehold-Descriptor": b64(note.encode("utf-8"))}
    path = chunk_path(encounter, "video", seq)
    if not direct:
        response = device.put_chunk(encounter, "video", seq, body, note)
        assert response.status_code == 201, response.text
        return
    presigned = device.call("POST", path + "/direct", headers=header).json()
    sent = {k: v for k, v in presigned["headers"].items() if k != "Content-Length"}
    assert device.session.put(presigned["url"], data=body, headers=sent,
                              timeout=30).status_code == 200
    response = device.call("POST", path + "/commit", headers=header)
    assert response.status_code == 201, response.text


def run(url: str, name: str, clients: int, count: int, size: int,
        direct: bool) -> tuple[float, list[float]]:
    """(seconds, latencies) of `clients` phones each sending `count // clients` chunks."""
    phones = []
    for _ in range(clients):
        device = Device(url, name)
        assert device.register().status_code == 201
        device.login()
        encounter = device.new_encounter()
        sealed = [device.seal(encounter, "video", seq, payload=os.urandom(size))
                  for seq in range(count // clients)]
        phones.append((device, encounter, sealed))
    latencies: list[float] = []
    lock = threading.Lock()

    def send(device: Device, encounter: str, sealed: list[tuple[bytes, str]]) -> None:
        for seq, (body, note) in enumerate(sealed):
            began = time.perf_counter()
            upload(device, encounter, seq, body, note, direct)
            with lock:
                latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=send, args=phone) for phone in phones]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


def cluster(root: Path, nodes: int, env: dict[str, str]) -> tuple[RoundRobinProxy, list[Gunicorn]]:
    proxy = RoundRobinProxy([0]).start()
    env = {**env, "SAFEHOLD_PUBLIC_URL": proxy.url, "SAFEHOLD_RATE_PER_MINUTE": "100000000"}
    servers = [Gunicorn(root / "data", workers=1, env=env).start() for _ in range(nodes)]
    proxy.upstream_ports[:] = [server.port for server in servers]
    return proxy, servers


def measure(root: Path, nodes: int, env: dict[str, str], args: argparse.Namespace,
            direct: bool) -> str:
    proxy, servers = cluster(root, nodes, env)
    try:
        sessions = [server.proc.pid for server in servers if server.proc is not None]
        cpu_before = cpu_seconds(sessions)
        seconds, latencies = run(proxy.url, f"127.0.0.1:{proxy.port}", args.clients,
                                 args.count, args.size * 1024, direct)
        cpu = cpu_seconds(sessions) - cpu_before  # includes registering/logging in the phones
    finally:
        for server in servers:
            server.stop()
        proxy.stop()
    chunks = len(latencies)
    return (f"{'presigned' if direct else 'proxied':9} nodes={nodes}  {chunks / seconds:7.1f} "
            f"chunks/s  p99 {p99(latencies):6.1f} ms  API CPU {cpu / chunks * 1000:5.2f} ms/chunk")


@contextmanager
def fresh_database(server_url: str | None) -> Iterator[dict[str, str]]:
    """SAFEHOLD_DATABASE_URL of a new, empty PostgreSQL database (dropped after the run), so
    no run sees another's rows; {} (the data folder's SQLite file) without a server URL."""
    if server_url is None:
        yield {}
        return
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"SAFEHOLD_DATABASE_URL": server_url.rsplit("/", 1)[0] + "/" + name}
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="chunks per run (default 300)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent phones (default 4)")
    parser.add_argument("--size", type=int, default=64, help="chunk payload in KiB (default 64)")
    parser.add_argument("--nodes", default="1,2", help="node counts to run (default 1,2)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL: metadata there, a fresh database per run "
                             "(default: SQLite in the data folder)")
    args = parser.parse_args()
    os.environ.update(MOTO_ENV)
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        for nodes in [int(n) for n in args.nodes.split(",")]:
            for direct in (False, True):
                bucket = f"bench-{uuid.uuid4().hex[:12]}"
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
                env = {"SAFEHOLD_BLOB_STORE": "s3", "SAFEHOLD_S3_BUCKET": bucket,
                       "SAFEHOLD_S3_ENDPOINT_URL": endpoint, "SAFEHOLD_DIRECT_UPLOADS": "1"}
                with tempfile.TemporaryDirectory() as scratch, \
                        fresh_database(args.database_url) as database:
                    line = measure(Path(scratch), nodes, {**env, **database}, args, direct)
                    print(f"{'pg' if database else 'sqlite':6} {line}", flush=True)
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
