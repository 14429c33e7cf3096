"""What a decrypted stream is, from its first bytes, so its file can be named for it.

A phone uploads opaque bytes; `decrypt` names each stream's output by the signature at the start
of its content (`audio.m4a`, `video.webm`), so a person can open it with a double click. Only
well-known container signatures are trusted; anything else (random bytes, an unknown format)
stays `<stream>.bin`. The table is deliberately small: a wrong name is worse than `.bin`.
"""

from __future__ import annotations

from pathlib import Path

SNIFF_BYTES = 64
_M4A_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")
# MPEG audio layer III: bitrates (kbit/s) by index for MPEG-1 and for MPEG-2/2.5, and rates.
_BITRATES = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def sniff(head: bytes) -> tuple[str, str] | None:
    """(file extension, description) for a known signature at the start of `head`, else None."""
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM by its DocType
        return ("webm", "WebM") if b"webm" in head[:SNIFF_BYTES] else ("mkv", "Matroska")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _M4A_BRANDS:
            return "m4a", "MPEG-4 audio (M4A)"
        if brand.startswith(b"3gp"):
            return "3gp", "3GPP"
        if brand == b"qt  ":
            return "mov", "QuickTime"
        return "mp4", "MPEG-4"
    if head.startswith(b"OggS"):
        return "ogg", "Ogg"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav", "WAVE"
    if head.startswith(b"fLaC"):
        return "flac", "FLAC"
    if head.startswith(b"#!AMR"):
        return "amr", "AMR"
    if head.startswith(b"ID3") or _two_mp3_frames(head):
        return "mp3", "MP3"
    return None


def _mp3_frame_length(head: bytes, at: int) -> int:
    """The length of the MPEG audio layer III frame whose header is at `at`, or 0 if none is."""
    if len(head) < at + 4 or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return 0
    version, layer = (head[at + 1] >> 3) & 3, (head[at + 1] >> 1) & 3
    bitrate_index, rate_index = head[at + 2] >> 4, (head[at + 2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return 0
    bitrate = _BITRATES[1 if version == 3 else 2][bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    padding = (head[at + 2] >> 1) & 1
    return (144 if version == 3 else 72) * bitrate // rate + padding


def _two_mp3_frames(head: bytes) -> bool:
    """A frame header and the next one where its length says: random bytes almost never are."""
    length = _mp3_frame_length(head, 0)
    return length > 0 and _mp3_frame_length(head, length) > 0


def name_by_content(folder: Path, name: str, stream: str) -> tuple[str, str | None]:
    """Rename `folder/name` (a `<stream>.bin` output) for what its content is; returns the new
    name and the description (None: unknown, the name stays)."""
    path = folder / name
    with open(path, "rb") as stream_file:
        head = stream_file.read(4096)  # two MP3 frames fit; the other signatures are short
    found = sniff(head)
    if found is None:
        return name, None
    extension, description = found
    new_name = f"{stream}.{extension}"
    path.rename(folder / new_name)
    return new_name, description
