#!/usr/bin/env python3
"""Draw the /record web app's icons (a red record dot in a white ring on a dark square) as PNGs
with the standard library only: `python3 scripts/record_icons.py web/src/record/icons`."""
import struct
import sys
import zlib
from pathlib import Path


def png(size: int) -> bytes:
    rows = []
    c = (size - 1) / 2
    r_dot = size * 0.30
    r_ring = size * 0.40
    ring_w = size * 0.035
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            d = ((x - c) ** 2 + (y - c) ** 2) ** 0.5
            if d <= r_dot:
                px = (0xd3, 0x1f, 0x2f, 255)
            elif abs(d - r_ring) <= ring_w:
                px = (0xf2, 0xf2, 0xf2, 255)
            else:
                px = (0x15, 0x15, 0x1a, 255)
            row += bytes(px)
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")

out = Path(sys.argv[1])
for s in (192, 512):
    (out / f"icon-{s}.png").write_bytes(png(s))
