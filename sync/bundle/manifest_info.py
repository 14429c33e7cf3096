"""The manifest's information fields: shown in the report, never used to verify.

`encounter` (started_at, created_at, log_origin), `fetched_at` and `fetched_by` are unsigned
statements of whoever made the bundle. Each has a strict format, so it is checked rather than
merely escaped: a field that is not well-formed is left out of the report, and `verify` warns
(`manifest_info`) naming it.
"""

from __future__ import annotations

from typing import Any

from crypto.descriptor import check_time
from crypto.errors import MalformedError
from crypto.slot import check_encounter

FETCHERS = ("device", "contact")


def manifest_info(manifest: dict[str, Any], origin: str) -> tuple[dict[str, Any], list[str]]:
    """{"encounter": {...}, "fetched_at": ..., "fetched_by": ...} with only well-formed values
    (None where absent or not), and the names of the fields that were present but malformed."""
    bad: list[str] = []
    encounter = manifest.get("encounter")
    if not isinstance(encounter, dict):
        if encounter is not None:
            bad.append("encounter")
        encounter = {}
    info_encounter = {name: _time(encounter.get(name), f"encounter.{name}", bad)
                      for name in ("started_at", "created_at")}
    log_origin = encounter.get("log_origin")
    if log_origin is not None and log_origin != origin:
        bad.append("encounter.log_origin")
        log_origin = None
    info_encounter["log_origin"] = log_origin
    return {"encounter": info_encounter,
            "fetched_at": _time(manifest.get("fetched_at"), "fetched_at", bad),
            "fetched_by": _fetcher(manifest.get("fetched_by"), bad)}, bad


def _time(value: Any, field: str, bad: list[str]) -> str | None:
    if value is None:
        return None
    try:
        return check_time(value)
    except MalformedError:
        bad.append(field)
        return None


def _fetcher(value: Any, bad: list[str]) -> dict[str, str] | None:
    if value is None:
        return None
    try:
        if not isinstance(value, dict) or value.get("kind") not in FETCHERS:
            raise MalformedError("kind")
        return {"kind": value["kind"], "id": check_encounter(value.get("id"))}  # a UUID
    except MalformedError:
        bad.append("fetched_by")
        return None
