"""Debian's Chromium, headless, for tests that look at pages as a person does.

`screenshot` and `dom` run `chromium --headless` on a URL with every host name unresolvable
except loopback (so a page that needs a CDN shows it), and `read_png` decodes the screenshot
(8-bit RGB/RGBA, what Chromium writes) so a test can ask whether a colour is on the page.
CI installs chromium (.ci/run); on a machine without it these tests are skipped, in CI they fail.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import pytest

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


def _run(url: str, *flags: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="chromium-test-") as profile:
        command = [chromium(), "--headless", "--disable-gpu", OFFLINE,
                   f"--user-data-dir={profile}", *flags, url]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")
        return subprocess.run(command, capture_output=True, timeout=120, check=False)


def screenshot(url: str, path: Path, width: int = 1200, height: int = 1600,
               wait_ms: int = 0) -> Path:
    flags = [f"--window-size={width},{height}", f"--screenshot={path}"]
    if wait_ms:
        flags.append(f"--virtual-time-budget={wait_ms}")
    done = _run(url, *flags)
    assert path.is_file(), done.stderr.decode(errors="replace")[-2000:]
    return path


def dom(url: str, wait_ms: int = 0) -> str:
    """The page's DOM after it ran (its scripts too, for `wait_ms` of virtual time)."""
    flags = ["--dump-dom"] + ([f"--virtual-time-budget={wait_ms}"] if wait_ms else [])
    done = _run(url, *flags)
    return done.stdout.decode(errors="replace")


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, width = 8, b"", 0
    height = colour = 0
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    channels = 4 if colour == 6 else 3
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 0xFF
        previous = line
        rows.append(bytes(line) if channels == 3 else
                     bytes(b for j in range(0, stride, 4) for b in line[j:j + 3]))
    return width, height, rows


def colours(path: Path) -> Counter[tuple[int, int, int]]:
    """How many pixels of each colour the screenshot has."""
    _w, _h, rows = read_png(path)
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        counts.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    return counts


def hex_rgb(text: str) -> tuple[int, int, int]:
    value = int(text.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF
