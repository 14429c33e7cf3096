"""bench/contact_reads.py: what recording every contact read costs, against the owner's reads.

A real `safehold serve` on loopback, one encounter holding one chunk of --chunk-kib KiB. The
owner's device and an immediate contact fetch the same chunk, in interleaved batches of
--batch requests (best of --reps batches each, wall-clock, one keep-alive connection). A
contact's read additionally appends a server-signed access leaf to the encounter's Merkle log,
signs a checkpoint and writes the access row, in one fsynced SQLite transaction; the owner's
read does none of that. Prints requests per second for both and the ratio contact / owner.

    .venv/bin/python bench/contact_reads.py [--batch 100] [--reps 5] [--chunk-kib 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/crypto.py would shadow the crypto package: look in the project first, then tests/.
sys.path[:1] = [str(ROOT), str(ROOT / "tests")]

from contactkit import Invitee, add_contact  # noqa: E402
from helpers import Device, ServerProcess, registered_device  # noqa: E402


def batch_rate(reader: Device | Invitee, path: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        response = reader.call("GET", path)
        assert response.status_code == 200, response.text
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--chunk-kib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        server = ServerProcess(Path(temp) / "data",
                               env={"SAFEHOLD_RATE_PER_MINUTE": "1000000"}).start()
        try:
            owner = registered_device(server.url, server.name)
            contact = add_contact(owner, "immediate")
            encounter = owner.new_encounter()
            owner.upload(encounter, "audio", 0, payload=b"x" * (args.chunk_kib * 1024 - 300))
            path = f"/v1/encounters/{encounter}/streams/audio/chunks/0"
            best = {"owner": 0.0, "contact": 0.0}
            for _ in range(args.reps):
                best["owner"] = max(best["owner"], batch_rate(owner, path, args.batch))
                best["contact"] = max(best["contact"], batch_rate(contact, path, args.batch))
            log_size = owner.call("GET", f"/v1/encounters/{encounter}").json()["log_size"]
        finally:
            server.stop()
    print(f"chunk {args.chunk_kib} KiB, best of {args.reps} batches of {args.batch}")
    print(f"owner reads   : {best['owner']:8.1f} req/s (not logged)")
    print(f"contact reads : {best['contact']:8.1f} req/s (each one a signed log leaf)")
    print(f"ratio contact / owner: {best['contact'] / best['owner']:.2f}")
    print(f"log size after the run: {log_size} leaves (1 chunk + access records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
