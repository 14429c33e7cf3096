"""Pieces for tests of `safehold fetch` over a real server: a phone with a trusted contact made
through the CLI, a recording of N chunks, the requests a command made (from the server's own
request log), and a command's peak memory.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bundlekit import ROOT, run_cli
from helpers import ServerProcess

FAST = {"SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}
# werkzeug's request line: 127.0.0.1 - - [date] "GET /v1/server HTTP/1.1" 200 - (the request
# of any status but 200 wrapped in ANSI colour codes)
REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|PATCH|DELETE) (/v1/[^ ?"]*)[^"]*" '
                          r'(\d{3}) ')


def safehold(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=FAST, timeout=timeout)


@dataclass
class Household:
    """A phone (owner) and Mom, a trusted contact with `immediate` release, both via the CLI."""

    phone: Path
    mom: Path
    mom_key: Path


def household(server: ServerProcess, root: Path) -> Household:
    phone, mom, key = root / "phone", root / "mom", root / "mom.key"
    done = safehold("device", "register", "--server", server.url, "--state", phone)
    assert done.returncode == 0, done.stderr
    invited = safehold("device", "invite", "--long", "--name", "Mom", "--policy", "immediate",
                       "--state", phone)
    assert invited.returncode == 0, invited.stderr
    assert safehold("keygen", "-o", key).returncode == 0
    joined = safehold("contact", "join", invited.stdout.strip(), "--server", server.url,
                      "--identity", key, "--state", mom)
    assert joined.returncode == 0, joined.stderr
    pinned = safehold("device", "contacts", "--state", phone)  # verify and pin Mom
    assert pinned.returncode == 0, pinned.stderr
    return Household(phone, mom, key)


def record(phone: Path, root: Path, media: bytes, chunk_bytes: int) -> str:
    source = root / "media.bin"
    source.write_bytes(media)
    done = safehold("device", "record", source, "--chunk-bytes", str(chunk_bytes),
                    "--state", phone)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[0]


def requests_since(server: ServerProcess, offset: int) -> Counter[str]:
    """Requests the server logged after byte `offset` of its log, by path shape."""
    counted: Counter[str] = Counter()
    for method, raw in _requests(server.output()[offset:]):
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", raw.split("?", 1)[0])
        counted[f"{method} {re.sub(r'/[0-9]+(?=/|$)', '/{n}', path)}"] += 1
    return counted


def _requests(log: str) -> list[tuple[str, str]]:
    """(method, path) of each request: the server's JSON access lines (server/ops/logs.py),
    or the plain access format when SAFEHOLD_LOG_FORMAT=text."""
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == "safehold.access" and "method" in entry:
                found.append((str(entry["method"]), str(entry["path"])))
        else:
            found += [(m.group(1), m.group(2)) for m in REQUEST_LINE.finditer(line)]
    return found


def log_offset(server: ServerProcess) -> int:
    return len(server.output())


# Runs a command and reports the largest resident set of that command alone (ru_maxrss of the
# wrapper's only child, in KiB), on stderr's last line.
_MEASURE = ("import resource, subprocess, sys\n"
            "done = subprocess.run(sys.argv[1:])\n"
            "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "print(f'peak-rss-kib {peak}', file=sys.stderr)\n"
            "sys.exit(done.returncode)\n")


def run_measured(*args: str | Path,
                 timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], int]:
    """`safehold ARGS...` in a subprocess; (its result, its peak RSS in bytes)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "cli.main",
                           *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**_env(), **FAST})
    lines = done.stderr.rstrip("\n").split("\n")
    peak = int(lines[-1].split()[-1]) * 1024
    result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout,
                                         "\n".join(lines[:-1]))
    return result, peak


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")} | {
        "PYTHONPATH": str(ROOT)}
