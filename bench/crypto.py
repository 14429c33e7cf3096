"""bench/crypto.py: our age v1 code against raw ChaCha20-Poly1305, same run, same process.

For each plaintext size (64 KiB and 1 MiB by default) with 3 X25519 recipients it times:
  - raw seal:  `cryptography`'s ChaCha20Poly1305.encrypt over the same bytes in 64 KiB pieces
               with 12-byte counter nonces (the least age's STREAM payload can cost);
  - raw open:  ChaCha20Poly1305.decrypt of those sealed pieces;
  - age seal:  crypto.age.encrypt(plaintext, 3 recipients, slot=...), a real Safehold chunk;
  - age open:  crypto.age.decrypt(chunk, [identity]) with the identity of the LAST X25519
               stanza (worst case: two stanzas are tried and fail first) and of the FIRST;
  - stream:    crypto.age.Decryptor fed 64 KiB reads (bytes, as file.read gives), last stanza.
Contenders run in batches of about --batch-ms, interleaved, best of --reps batches, timed in
CPU seconds of this process (time.process_time: page faults count, other processes' load on a
shared machine does not; everything timed is single-threaded). It prints
MB/s (10^6 plaintext bytes per second) and the ratio ours / raw (goal: >= 0.7 at 1 MiB), and the
fixed per-file cost (X25519, HKDF, header HMAC) measured on an empty plaintext, which no
payload optimisation can remove and which dominates small chunks.

Each measurement runs in a child process, twice: with glibc's default allocator settings, and
with a steady heap (GLIBC_TUNABLES: no trimming, no per-buffer mmap). In a VM where every page
fault is expensive the default one returns freed megabytes to the kernel and faults them back in
on the next call, which costs both sides by how many fresh bytes they allocate; the steady run
shows the computation alone.

    .venv/bin/python bench/crypto.py [--sizes 65536,1048576] [--reps 15] [--batch-ms 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is bench/crypto.py: the script's own folder must not shadow the crypto package.
sys.path[0] = str(ROOT)

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402

from crypto import age  # noqa: E402
from crypto.slot import Slot  # noqa: E402

PIECE = 64 * 1024
READ = 64 * 1024
RECIPIENTS = 3
SLOT = Slot("0b3c6a1e-7f2d-4c59-9a41-5d8e2f1b7c60", "video", 42, False)
STEADY_HEAP = "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=67108864"
ALLOCATORS = {"glibc default allocator": None, "steady heap": STEADY_HEAP}
COMPARED = (("age seal", "raw seal"), ("age open, last stanza", "raw open"),
            ("age open, first stanza", "raw open"), ("stream open, last", "raw open"))
Op = Callable[[], object]


def raw_seal(key: bytes, plaintext: bytes) -> list[bytes]:
    encrypt = ChaCha20Poly1305(key).encrypt
    view = memoryview(plaintext)
    return [encrypt(i.to_bytes(12, "big"), view[pos : pos + PIECE], None)
            for i, pos in enumerate(range(0, max(len(view), 1), PIECE))]


def raw_open(key: bytes, pieces: list[bytes]) -> list[bytes]:
    decrypt = ChaCha20Poly1305(key).decrypt
    return [decrypt(i.to_bytes(12, "big"), piece, None) for i, piece in enumerate(pieces)]


def stream_open(identity: str, sealed: bytes) -> bytes:
    decryptor = age.Decryptor([identity])
    out = [decryptor.update(sealed[pos : pos + READ]) for pos in range(0, len(sealed), READ)]
    out.append(decryptor.finalize())
    return b"".join(out)


def batch_size(op: Op, batch_ms: float) -> int:
    op()  # warm caches (parsed keys) as a long-running phone or tool would have them
    start = time.process_time()
    op()
    once = max(time.process_time() - start, 1e-7)
    return max(1, round(batch_ms / 1000 / once))


def best_per_op(ops: dict[str, Op], reps: int, batch_ms: float) -> dict[str, float]:
    """Best seconds per call of each op; batches of all ops are interleaved to share noise."""
    sizes = {name: batch_size(op, batch_ms) for name, op in ops.items()}
    best = dict.fromkeys(ops, float("inf"))
    for _ in range(reps):
        for name, op in ops.items():
            count = sizes[name]
            start = time.process_time()
            for _ in range(count):
                op()
            best[name] = min(best[name], (time.process_time() - start) / count)
    return best


def contenders(size: int, identities: list[str], recipients: list[str]) -> dict[str, Op]:
    plaintext = os.urandom(size)
    raw_key = os.urandom(32)
    raw_sealed = raw_seal(raw_key, plaintext)
    chunk = age.encrypt(plaintext, recipients, slot=SLOT)
    first, last = identities[0], identities[-1]
    # Check once that every contender does the real work before timing it.
    assert b"".join(raw_open(raw_key, raw_sealed)) == plaintext
    assert age.decrypt(chunk, [last]) == age.decrypt(chunk, [first]) == plaintext
    assert stream_open(last, chunk) == plaintext
    return {
        "raw seal": lambda: raw_seal(raw_key, plaintext),
        "raw open": lambda: raw_open(raw_key, raw_sealed),
        "age seal": lambda: age.encrypt(plaintext, recipients, slot=SLOT),
        "age open, last stanza": lambda: age.decrypt(chunk, [last]),
        "age open, first stanza": lambda: age.decrypt(chunk, [first]),
        "stream open, last": lambda: stream_open(last, chunk),
    }


def fixed_costs(identities: list[str], recipients: list[str], reps: int,
                batch_ms: float) -> dict[str, float]:
    """Per-file cost of each contender on an empty plaintext (no payload work to speak of)."""
    empty = age.encrypt(b"", recipients, slot=SLOT)
    return best_per_op({
        "age seal": lambda: age.encrypt(b"", recipients, slot=SLOT),
        "age open, last stanza": lambda: age.decrypt(empty, [identities[-1]]),
        "age open, first stanza": lambda: age.decrypt(empty, [identities[0]]),
        "stream open, last": lambda: stream_open(identities[-1], empty),
    }, reps, batch_ms)


def measure(sizes: list[int], reps: int, batch_ms: float) -> dict[str, dict[str, float]]:
    identities = [age.generate_identity() for _ in range(RECIPIENTS)]
    recipients = [age.recipient_of(identity) for identity in identities]
    results = {str(size): best_per_op(contenders(size, identities, recipients), reps, batch_ms)
               for size in sizes}
    results["fixed"] = fixed_costs(identities, recipients, reps, batch_ms)
    return results


def run_child(args: argparse.Namespace, tunables: str | None) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    argv = [sys.executable, __file__, "--child", "--sizes", args.sizes, "--reps",
            str(args.reps), "--batch-ms", str(args.batch_ms)]
    done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    result: dict[str, dict[str, float]] = json.loads(done.stdout)
    return result


def report(label: str, results: dict[str, dict[str, float]]) -> None:
    fixed = results["fixed"]
    print(f"\n== {label}")
    print(f"   fixed per-file cost, {RECIPIENTS} recipients (us): "
          + ", ".join(f"{name} {seconds * 1e6:.0f}" for name, seconds in fixed.items()))
    for size_text, best in results.items():
        if size_text == "fixed":
            continue
        size = int(size_text)
        print(f"   {size // 1024} KiB plaintext    {'us/op':>8} {'MB/s':>8} {'ratio':>6}")
        for raw in ("raw seal", "raw open"):
            print(f"     {raw:24} {best[raw] * 1e6:8.0f} {size / best[raw] / 1e6:8.0f}")
        for ours, raw in COMPARED:
            print(f"     {ours:24} {best[ours] * 1e6:8.0f} {size / best[ours] / 1e6:8.0f} "
                  f"{best[raw] / best[ours]:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default=f"{64 * 1024},{1024 * 1024}")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--batch-ms", type=float, default=40.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        print(json.dumps(measure(sizes, args.reps, args.batch_ms)))
        return
    print(f"bench/crypto.py: best of {args.reps} interleaved batches of ~{args.batch_ms:.0f} ms; "
          "ratio = our MB/s / raw ChaCha20-Poly1305 MB/s (goal >= 0.7 at 1 MiB)")
    for label, tunables in ALLOCATORS.items():
        report(label, run_child(args, tunables))


if __name__ == "__main__":
    main()
