"""bench/hostile_bundle.py: peak memory and time of `safehold verify` on hostile zips against
the same bundle zipped soundly, same run.

Builds a small sound bundle (tests/bundlekit.py) and zips it as `safehold fetch --zip` does
(baseline); then the same bundle with its manifest deflated behind MIB MiB of white space (a
zip bomb: valid JSON once inflated, a few hundred KiB zipped), and a zip of 600 017 empty
members (one more than a bundle may hold). Runs `safehold verify` on each as a child process
and prints its peak resident memory (its workers included) and wall time, and the ratio
hostile / sound (goal: about 1, i.e. the hostile zip costs what a sound small one does).

Usage: .venv/bin/python bench/hostile_bundle.py [--mib 400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bundlekit import run_cli_measured, scenario, stored_zip_of_empty_files  # noqa: E402

from sync.bundle.files import zip_bundle  # noqa: E402
from sync.bundle.limits import MAX_FILES  # noqa: E402


def bomb(bundle: Path, target: Path, mib: int) -> None:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(bundle.rglob("*")):
            if path.is_file() and path.name != "manifest.json":
                archive.write(path, path.relative_to(bundle).as_posix())
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("manifest.json", "w", force_zip64=True) as member:
        for _ in range(mib):
            member.write(b" " * (1 << 20))
        member.write((bundle / "manifest.json").read_bytes())


def measure(target: Path) -> tuple[int, int, float, str]:
    start = time.perf_counter()
    result, peak = run_cli_measured("verify", target, timeout=600)
    return result.returncode, peak, time.perf_counter() - start, result.stderr.strip()[:110]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=400)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="safehold-bench-hostile-"))
    try:
        sc = scenario(work / "bundle", {"log": [b'{"event": "start"}'],
                                         "audio": os.urandom(3 * 4096)})
        sound = work / "sound.zip"
        zip_bundle(sc.bundle, sound)
        bombed, many = work / "bomb.zip", work / "many.zip"
        bomb(sc.bundle, bombed, args.mib)
        stored_zip_of_empty_files(many, MAX_FILES + 1)
        code, base_peak, base_time, _ = measure(sound)
        print(f"sound zip ({sound.stat().st_size} bytes): exit {code}, peak "
              f"{base_peak / 2**20:.0f} MiB, {base_time:.2f} s")
        for name, target in ((f"zip bomb ({args.mib} MiB manifest)", bombed),
                             (f"{MAX_FILES + 1} members", many)):
            code, peak, took, err = measure(target)
            print(f"{name} ({target.stat().st_size} bytes): exit {code}, peak "
                  f"{peak / 2**20:.0f} MiB ({peak / base_peak:.2f}x sound), {took:.2f} s "
                  f"({took / base_time:.2f}x); {err}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
