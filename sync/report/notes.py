"""The notes and locations the person added to the event log, for the report and the terminal.

Read back from the decrypted event log files (log.jsonl, addenda.jsonl) chunk by chunk, using
where decrypt placed each chunk, so every row names the chunk (stream, seq) that holds it. The
text is the person's own, but it reaches us from a bundle: it is shown only through safe_text
(build_report does that for report.json; html.py escapes again; the terminal goes through
safe_lines), never interpreted. A location is coordinates and accuracy only: no map, no network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sync.report.summary import both
from sync.verifying.decrypt import EVENT_STREAMS, LOG_STREAM, StreamOutput

ENTRY_LIMIT = 64 * 1024  # an entry is a few hundred bytes; a larger one is not read whole


def notes_and_locations(outdir: Path, outputs: list[StreamOutput]) -> list[dict[str, Any]]:
    """One row per note or location entry, the event log first, then its addenda, in seq order."""
    rows: list[dict[str, Any]] = []
    for out in sorted((o for o in outputs if o.stream in EVENT_STREAMS),
                      key=lambda o: o.stream != LOG_STREAM):
        with open(outdir / out.file, "rb") as source:
            for piece in out.pieces:
                source.seek(piece.offset)
                row = _row(source.read(min(piece.length, ENTRY_LIMIT)))
                if row is not None:
                    rows.append({**row, "stream": out.stream, "seq": piece.seq,
                                 "after_stop": out.stream != LOG_STREAM})
    return rows


def _row(data: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(data)
    except ValueError:
        return None  # not an entry we can read; log.jsonl still holds it as it was
    if not isinstance(entry, dict) or entry.get("event") not in ("note", "location"):
        return None
    at = entry.get("at") if isinstance(entry.get("at"), str) else None
    row: dict[str, Any] = {"event": entry["event"], "at": at, "time": both(at)}
    if entry["event"] == "note":
        text = entry.get("text")
        row["text"] = text if isinstance(text, str) else None
    else:
        row.update({name: _number(entry.get(name)) for name in ("lat", "lon", "accuracy")})
    return row


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def describe(row: dict[str, Any]) -> str:
    """The entry in words: the note's text, or `40.7128, -74.006 (within 12.5 m)`."""
    if row["event"] == "note":
        return row["text"] if row.get("text") is not None else "(a note without readable text)"
    if row.get("lat") is None or row.get("lon") is None:
        return "(a location without readable coordinates)"
    accuracy = row.get("accuracy")
    within = f"within {accuracy:g} m" if accuracy is not None else "accuracy not known"
    return f"latitude {row['lat']:g}, longitude {row['lon']:g} ({within})"


def terminal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What decrypt prints (through safe_lines: the text is the bundle's, not ours)."""
    lines = []
    for row in rows:
        when = row["time"]["local"] if row.get("time") else f"at {row.get('at') or 'unknown'}"
        label = "Note" if row["event"] == "note" else "Location"
        later = " (added after the recording stopped)" if row.get("after_stop") else ""
        lines.append(f"{label:<10} {when}{later}: {describe(row)}")
    return lines
