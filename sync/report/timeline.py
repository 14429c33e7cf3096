"""The timeline picture in report.html: one lane per stream, its chunks over time, its gaps and
how it ended, as an inline SVG (no scripts, no fetches; it prints into report.pdf as drawn).

Chunks are placed at the time the phone signed them (signed, so the picture cannot be moved by
anyone but the phone). Consecutive chunks are drawn as one bar, so a week-long recording is as
small a picture as a minute's: the number of shapes grows with the gaps, not the chunks. A gap
(seqs that never reached the server) is a red hatched band with the seqs named; a stream that
was cut off (no final chunk) ends in a red line marked "cut off", a closed one in a green mark.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any

from sync.report.summary import local_zone, parse_utc
from sync.verifying.findings import seq_ranges

WIDTH, LEFT, RIGHT, TOP, LANE = 960, 80, 70, 34, 34
COLOURS = {"audio": "#2f6db5", "video": "#7b3fa0", "log": "#6b6b6b"}
MAX_BARS = 4000  # per picture; beyond it the table (and report.json) carry the detail


def _runs(seqs_times: list[tuple[int, datetime]]) -> list[tuple[int, int, datetime, datetime]]:
    """(first seq, last seq, first time, last time) of each run of consecutive seqs."""
    runs: list[tuple[int, int, datetime, datetime]] = []
    for seq, moment in seqs_times:
        if runs and seq == runs[-1][1] + 1:
            first, _last, start, end = runs[-1]
            runs[-1] = (first, seq, min(start, moment), max(end, moment))
        else:
            runs.append((seq, seq, moment, moment))
    return runs


STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
         86400)  # seconds between axis ticks: round numbers on a clock


def _ticks(start: datetime, end: datetime, most: int = 8) -> list[datetime]:
    """Ticks at round clock times (every 5 s, 1 min, 15 min ...), at most `most` of them."""
    span = max((end - start).total_seconds(), 1.0)
    step = next((s for s in STEPS if span / s <= most - 1), STEPS[-1])
    _zone, _name = local_zone()
    local = start.astimezone(_zone)
    # Round up to a multiple of the step in local time (minutes and seconds past the hour).
    into = (local.minute * 60 + local.second + local.microsecond / 1e6) % step if step < 3600 \
        else (local.hour * 3600 + local.minute * 60 + local.second) % step
    first = start + timedelta(seconds=(step - into) % step)
    count = int((end - first).total_seconds() // step) + 1
    ticks = [first + timedelta(seconds=step * i) for i in range(max(count, 0))]
    return ticks if len(ticks) >= 2 else [start, end]  # under a second or two: its two ends


def render_timeline(report: dict[str, Any]) -> str:
    """The SVG for the report's chunks and streams (an explanatory line if there is no time)."""
    lanes: dict[str, list[tuple[int, datetime]]] = {}
    for chunk in report["chunks"]:
        moment = parse_utc(chunk.get("device_time"))
        if moment is not None:
            lanes.setdefault(chunk["stream"], []).append((chunk["seq"], moment))
    if not lanes:
        return "<p>No chunk carries a signed time: there is nothing to draw.</p>"
    start = min(m for pieces in lanes.values() for _s, m in pieces)
    end = max(m for pieces in lanes.values() for _s, m in pieces)
    span = max((end - start).total_seconds(), 1.0)
    last, end = end, start + timedelta(seconds=span)  # under a second: drawn as one second
    plot = WIDTH - LEFT - RIGHT

    def x(moment: datetime) -> float:
        return LEFT + plot * (moment - start).total_seconds() / span

    streams = {s["name"]: s for s in report["streams"]}
    order = sorted(lanes, key=lambda name: (name == "log", name))
    height = TOP + LANE * len(order) + 46
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
             "<title>Timeline: chunks per stream over time, gaps and cut-offs</title>",
             '<defs><pattern id="gap" width="6" height="6" patternUnits="userSpaceOnUse" '
             'patternTransform="rotate(45)"><rect width="3" height="6" fill="#c62828"/>'
             "</pattern></defs>"]
    parts += _axis(start, end, last, x, height)
    bars = 0
    for row, name in enumerate(order):
        y = TOP + LANE * row
        pieces = sorted(lanes[name])
        runs = _runs(pieces)[:MAX_BARS - bars]
        bars += len(runs)
        parts.append(f'<text x="{LEFT - 8}" y="{y + 17}" text-anchor="end" '
                     f'font-weight="bold">{html.escape(name)}</text>')
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y + 13}" y2="{y + 13}" '
                     'stroke="#ddd"/>')
        parts += _lane(name, runs, streams.get(name, {}), x, y)
    parts.append("</svg>")
    return "".join(parts)


def _axis(start: datetime, end: datetime, last: datetime, x: Any, height: int) -> list[str]:
    zone, zone_name = local_zone()
    parts = []
    bottom = height - 38
    for tick in _ticks(start, end):
        at = x(tick)
        label = tick.astimezone(zone).strftime("%H:%M:%S.%f")[:12 if tick.microsecond else 8]
        parts.append(f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{TOP - 6}" y2="{bottom}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{at:.1f}" y="{TOP - 10}" text-anchor="middle">'
                     f"{html.escape(label)}</text>")
    parts.append(f'<text x="{LEFT}" y="{height - 20}">Time on the phone\'s signed clock, '
                 f"{html.escape(zone_name)} (local to this computer). Bars: chunks present; "
                 "red hatching: chunks that never reached the server.</text>")
    parts.append(f'<text x="{LEFT}" y="{height - 6}">From '
                 f"{html.escape(start.astimezone(zone).strftime('%Y-%m-%d %H:%M:%S %Z'))} to "
                 f"{html.escape(last.astimezone(zone).strftime('%Y-%m-%d %H:%M:%S %Z'))}.</text>")
    return parts


def _lane(name: str, runs: list[tuple[int, int, datetime, datetime]], stream: dict[str, Any],
          x: Any, y: int) -> list[str]:
    colour = COLOURS.get(name, "#2e7d5b")
    parts = []
    previous: tuple[int, int, datetime, datetime] | None = None
    if runs and runs[0][0] > 0:  # the first seqs never arrived
        parts.append(_gap(list(range(0, runs[0][0])), x(runs[0][2]) - 14, x(runs[0][2]), y))
    for run in runs:
        first, last, begin, finish = run
        if previous is not None:
            parts.append(_gap(list(range(previous[1] + 1, first)), x(previous[3]), x(begin), y))
        left = x(begin)
        width = max(x(finish) - left, 3.0)
        label = f"{name} seq {first}-{last}" if first != last else f"{name} seq {first}"
        parts.append(f'<rect x="{left:.1f}" y="{y + 5}" width="{width:.1f}" height="16" '
                     f'fill="{colour}"><title>{html.escape(label)}</title></rect>')
        previous = run
    if previous is not None:
        parts.append(_ending(stream, x(previous[3]), y))
    return parts


def _gap(missing: list[int], left: float, right: float, y: int) -> str:
    width = max(right - left, 4.0)
    text = f"missing seq {seq_ranges(missing)}"
    return (f'<rect x="{left:.1f}" y="{y + 3}" width="{width:.1f}" height="20" fill="url(#gap)" '
            f'stroke="#c62828"><title>{html.escape(text)}</title></rect>'
            f'<text x="{left + width / 2:.1f}" y="{y + 33}" text-anchor="middle" '
            f'fill="#c62828">{html.escape(text)}</text>')


def _ending(stream: dict[str, Any], at: float, y: int) -> str:
    if stream.get("cut_off"):
        return (f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{y}" y2="{y + 26}" stroke="#c62828" '
                f'stroke-width="3"/><text x="{at + 5:.1f}" y="{y + 17}" fill="#c62828" '
                'font-weight="bold">cut off</text>')
    return (f'<path d="M{at + 2:.1f} {y + 5}l8 8-8 8z" fill="#1b7a1b"/>'
            f'<text x="{at + 13:.1f}" y="{y + 17}" fill="#1b7a1b">end</text>')
