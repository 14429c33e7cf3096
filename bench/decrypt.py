"""bench/decrypt.py: `safehold decrypt` (verify + decrypt + report) against `age -d`, same run.

Builds a bundle of SIZE bytes (default 256 MiB) in 256 KiB chunks directly with crypto/ (the
phone's and the server's part played as in tests/bundlekit.py), and the same plaintext as one
age file. Then, alternating, it times:
  - baseline: `age -d -i KEY -o OUT whole.age` (Debian's age, Go);
  - ours:     `safehold decrypt BUNDLE -i KEY -o OUTDIR --no-pdf` (verifies everything, same
              pass), the same with report.pdf printed by Chromium (when installed), and
              `safehold verify BUNDLE` alone;
as child processes, reading each one's peak resident memory from wait4(). Prints the medians
and the ratio age_time / our_time (goal >= 1.0) and our peak memory (goal < 200 MB).
Our modules are byte-compiled first, as an installed package is: otherwise, where
PYTHONDONTWRITEBYTECODE is set, every run would compile them anew (~50 ms) before starting.

Usage: .venv/bin/python bench/decrypt.py [--mib 256] [--chunk-kib 256] [--runs 3] [--dir D]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bundlekit import T0, Device, Recording, Sealed, Witness, write_bundle  # noqa: E402

from crypto import age  # noqa: E402
from crypto.descriptor import describe_chunk, format_time, sign_descriptor  # noqa: E402
from crypto.slot import Slot  # noqa: E402


def build(workdir: Path, total: int, chunk: int) -> tuple[Path, Path, Path, str]:
    """The bundle, the whole-file age baseline input, the identity file; and the plaintext hash."""
    identity = age.generate_identity()
    recipients = [age.recipient_of(identity)]
    key_file = workdir / "key.txt"
    key_file.write_text(identity + "\n")
    device, witness = Device(), Witness()
    encounter = "0b3c6a1e-7f2d-4c59-9a41-5d8e2f1b7c60"
    chunks, digest = [], hashlib.sha256()
    plain = workdir / "plain.bin"
    with open(plain, "wb") as whole:
        for seq in range(-(-total // chunk)):
            part = os.urandom(min(chunk, total - seq * chunk))
            whole.write(part)
            digest.update(part)
            slot = Slot(encounter, "video", seq, seq == -(-total // chunk) - 1)
            sealed = age.encrypt(part, recipients, slot=slot)
            when = T0 + timedelta(milliseconds=250 * seq)
            note = sign_descriptor(describe_chunk(sealed, slot, format_time(when)),
                                   device.signing_key)
            # Keep only what the bundle needs; the plaintext is on disk already.
            item = Sealed("video", seq, sealed, note, b"")
            item.receipt = witness.append(encounter, note.encode(), when)
            chunks.append(item)
    bundle = write_bundle(workdir / "bundle", Recording(encounter, chunks), device, witness)
    chunks.clear()
    whole_age = workdir / "whole.age"
    subprocess.run(["age", "-r", recipients[0], "-o", str(whole_age), str(plain)], check=True)
    plain.unlink()
    return bundle, whole_age, key_file, digest.hexdigest()


def timed(argv: list[str]) -> tuple[float, int, float]:
    """Wall time, peak RSS (bytes) and CPU seconds (user+system, with its own children) of
    one child process; fails loudly if it fails."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Whatever the build or the previous run wrote (hundreds of MB) is flushed first, so its
    # write-back does not compete for the cores with the run being timed.
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:4]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime  # maxrss in KiB


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--chunk-kib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_into:  # the child that builds, so the timing parent stays small
        print(json.dumps([str(x) for x in build(args.build_into, args.mib << 20,
                                                  args.chunk_kib << 10)]))
        return
    workdir = Path(tempfile.mkdtemp(prefix="safehold-bench-", dir=args.dir))
    try:
        run(workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(workdir: Path, args: argparse.Namespace) -> None:
    total, chunk = args.mib << 20, args.chunk_kib << 10
    t0 = time.perf_counter()
    # Built in a child process: a child forked from a big parent would report the parent's
    # memory as its own peak (ru_maxrss survives exec).
    built = subprocess.run([sys.executable, __file__, "--build-into", str(workdir),
                            "--mib", str(args.mib), "--chunk-kib", str(args.chunk_kib)],
                           check=True, capture_output=True, text=True).stdout
    bundle, whole_age, key_file, plain_hash = json.loads(built)
    bundle, whole_age, key_file = Path(bundle), Path(whole_age), Path(key_file)
    print(f"built {args.mib} MiB bundle of {-(-total // chunk)} chunks of {args.chunk_kib} KiB "
          f"in {time.perf_counter() - t0:.1f}s ({os.cpu_count()} cores)")
    python = [sys.executable, "-m", "cli.main"]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "crypto", "schemas", "sync", "cli"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    load = os.getloadavg()[0]  # other work on the machine skews both sides, ours more
    age_runs, our_runs, verify_runs, pdf_runs = [], [], [], []
    pdf = shutil.which("chromium") is not None
    for i in range(args.runs):
        out_age, out_ours = workdir / f"age-{i}.bin", workdir / f"ours-{i}"
        age_runs.append(timed(["age", "-d", "-i", str(key_file), "-o", str(out_age),
                               str(whole_age)]))
        our_runs.append(timed([*python, "decrypt", str(bundle), "-i", str(key_file),
                               "-o", str(out_ours), "--no-pdf"]))
        if pdf:
            pdf_runs.append(timed([*python, "decrypt", str(bundle), "-i", str(key_file),
                                   "-o", str(workdir / f"pdf-{i}")]))
            assert (workdir / f"pdf-{i}" / "report.pdf").is_file()
            shutil.rmtree(workdir / f"pdf-{i}")
        verify_runs.append(timed([*python, "verify", str(bundle)]))
        if i == 0:  # the outputs are the same bytes
            assert file_sha256(out_age) == plain_hash == file_sha256(out_ours / "video.bin")
        out_age.unlink()
        shutil.rmtree(out_ours)
    def median(runs: list[tuple[float, int, float]], field: int) -> float:
        return statistics.median(run[field] for run in runs)

    age_t, ours_t, mb = median(age_runs, 0), median(our_runs, 0), total / 1e6
    print(f"load average at start: {load:.2f}; medians of {args.runs} runs")
    rows = [("age -d (one file)", age_runs), ("safehold decrypt (+verify)", our_runs),
            ("safehold verify alone", verify_runs)]
    if pdf_runs:
        rows.insert(2, ("decrypt (+verify, +PDF)", pdf_runs))
    for label, runs in rows:
        wall = median(runs, 0)
        print(f"{label:<27}: {wall:6.2f}s wall {mb / wall:7.1f} MB/s, "
              f"{median(runs, 2):5.2f}s CPU")
    peak = max(run[1] for run in our_runs + verify_runs)
    print(f"ratio age_time/our_time    : {age_t / ours_t:6.2f}   (goal >= 1.0)")
    print(f"our peak memory (RSS)      : {peak / 1e6:6.1f} MB (goal < 200 MB)")
    if pdf_runs:
        print(f"report.pdf costs           : {median(pdf_runs, 0) - ours_t:+6.2f}s wall "
              f"({median(pdf_runs, 0) / ours_t:.2f}x decrypt --no-pdf)")
    else:
        print("report.pdf                 : not measured (no chromium on PATH)")


if __name__ == "__main__":
    main()
