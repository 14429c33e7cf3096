"""What a judge looks for first in the report: when the recording started and ended, how long
it lasted, in the reader's time zone as well as UTC, and who is who by names the reader knows.

Times: every time in a bundle is UTC (RFC 3339). The report shows each one also in the time zone
of the computer that runs `decrypt` (`TZ`, else the system's), and says which zone that is.

Names: a device is named by its key's fingerprint, not its bare UUID; when the state folder
of the person decrypting knows the owner (a trusted contact's `contact join --name`, matched by
the owner's device keys the invitation proved), or is the recording device itself, that name
is given too. Names from the state folder are the reader's own words, escaped like the rest.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=1)
def local_zone() -> tuple[tzinfo, str]:
    """The time zone of this computer, and its name (IANA where it can be found)."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _system_zone_name()):
        if name:
            try:
                return ZoneInfo(name), name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    zone = datetime.now().astimezone().tzinfo or UTC
    return zone, str(zone)


def _system_zone_name() -> str:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return ""
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""


def parse_utc(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def local_text(moment: datetime) -> str:
    """`2026-11-27 22:30:05 EST`: the moment in this computer's zone, to the second."""
    zone, _name = local_zone()
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def both(text: object) -> dict[str, str] | None:
    moment = parse_utc(text)
    return None if moment is None else {"local": local_text(moment), "utc": utc_text(moment)}


def duration_text(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def time_zone_block() -> dict[str, str]:
    zone, name = local_zone()
    offset = datetime.now(zone).strftime("%z")
    return {"name": name, "utc_offset": f"{offset[:3]}:{offset[3:]}" if offset else "+00:00",
            "note": "local times are in the time zone of the computer that ran safehold "
                    "decrypt; UTC is given beside them"}


def summary(chunks: list[dict[str, Any]], streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Start, end and duration by the phone's signed clock (first and last chunk signed), the
    last receipt by the server's clock, and which streams were cut off or have gaps."""
    signed = sorted(m for m in (parse_utc(c.get("device_time")) for c in chunks) if m)
    received = sorted(m for m in (parse_utc(c.get("received_at")) for c in chunks) if m)
    started, ended = (signed[0], signed[-1]) if signed else (None, None)
    return {
        "started": both(started.isoformat()) if started else None,
        "ended": both(ended.isoformat()) if ended else None,
        "duration_seconds": (ended - started).total_seconds() if started and ended else None,
        "duration": duration_text((ended - started).total_seconds())
        if started and ended else None,
        "last_received": both(received[-1].isoformat()) if received else None,
        "cut_off": [s["name"] for s in streams if s.get("cut_off")],
        "with_gaps": [s["name"] for s in streams if s.get("missing")],
    }


# ---------------------------------------------------------------- names


def known_names(state_dir: Path | None, devices: dict[str, str]) -> tuple[dict[str, str],
                                                                           str | None]:
    """(device id -> the name the reader knows its owner by, the reader's own contact id).
    Read-only: a missing or damaged state folder just means no names."""
    if state_dir is None:
        return {}, None
    from sync.errors import SyncError
    from sync.people.contact_state import MEMBERSHIPS, ContactState

    try:
        if (state_dir / MEMBERSHIPS).is_file():
            return _contact_names(ContactState(state_dir), devices)
        from sync.device.state import StateFolder

        settings = StateFolder(state_dir).load_settings()
    except (SyncError, OSError):
        return {}, None
    if settings is None or settings.device_id not in devices:
        return {}, None
    return {d: "this device (yours)" if d == settings.device_id else "your other device"
            for d, key in devices.items()}, None


def _contact_names(state: Any, devices: dict[str, str]) -> tuple[dict[str, str], str | None]:
    names: dict[str, str] = {}
    me = None
    for membership in state.memberships():
        for device_id, key in devices.items():
            if key in membership.owner_device_keys:
                names[device_id] = str(membership.label)
                me = str(membership.contact_id)
    return names, me
