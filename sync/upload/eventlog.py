"""Entries of an encounter's event log: what they hold, and their exact bytes.

Each entry is one JSON object on one line, sealed as its own chunk of the stream `log`
(docs/protocol.md C.3 step 4): `start`, `chunk` and `stop` are written by the recorder; `note`
(typed text: a badge number, an agency, what was said) and `location` (coordinates the phone
gave, with their accuracy in metres when known) by the person. The bytes are the same from every
writer (this module and web/src/protocol/eventlog.js): keys sorted, no spaces, non-ASCII as
\\u escapes, one newline at the end - so a line is plain ASCII whatever was typed.

Bounds are checked here, before anything is sealed, so a refused note leaves the outbox as it was.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_NOTE_CHARS = 2000  # a long paragraph; a chunk of the log stays small (a few KiB at most)


class EntryError(ValueError):
    """An entry the person asked for cannot be written (the message says what to change)."""


def encode_entry(entry: dict[str, Any]) -> bytes:
    """The entry's line, exactly as every Safehold writer makes it."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode("ascii") + b"\n"


def note_entry(at: str, text: str) -> dict[str, Any]:
    if not text.strip():
        raise EntryError("the note is empty: type what you want to record")
    if len(text) > MAX_NOTE_CHARS:
        raise EntryError(f"the note is {len(text)} characters long; at most {MAX_NOTE_CHARS} "
                         "fit in one note (split it into several)")
    return {"at": at, "event": "note", "text": text}


def location_entry(at: str, lat: float, lon: float,
                   accuracy: float | None = None) -> dict[str, Any]:
    _check_range("latitude", lat, -90.0, 90.0)
    _check_range("longitude", lon, -180.0, 180.0)
    if accuracy is not None and (not math.isfinite(accuracy) or accuracy < 0):
        raise EntryError(f"accuracy must be a distance in metres (0 or more), got {accuracy}")
    return {"accuracy": accuracy, "at": at, "event": "location", "lat": lat, "lon": lon}


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise EntryError(f"{name} must be between {low:g} and {high:g} degrees, got {value}")
