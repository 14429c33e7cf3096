"""Following the account's changes feed, so every device knows every encounter.

`GET /v1/changes?cursor=C` returns `{changes, cursor, done}`; the cursor is kept in the outbox
(meta `changes_cursor`) and advanced only after the changes it covers are recorded, so a crash
replays a page rather than skipping one (recording an encounter twice is harmless).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.upload.outbox import Outbox

CURSOR_KEY = "changes_cursor"


class FeedSource(Protocol):
    def changes(self, cursor: str | None, limit: int = 500) -> dict[str, Any]: ...
    def list_encounters(self) -> list[dict[str, Any]]: ...


@dataclass
class FeedResult:
    changes: int = 0
    new_encounters: list[str] = field(default_factory=list)


def follow_changes(outbox: Outbox, source: FeedSource, page_size: int = 500) -> FeedResult:
    """Read the feed to its end; remember encounters this device did not know about."""
    result = FeedResult()
    cursor = outbox.get_meta(CURSOR_KEY)
    started: dict[str, str] | None = None
    while True:
        page = source.changes(cursor, limit=page_size)
        changes = list(page.get("changes") or [])
        result.changes += len(changes)
        created = {str(c["encounter_id"]) for c in changes if c.get("encounter_id")}
        unknown = sorted(e for e in created if outbox.encounter(e) is None)
        if unknown and started is None:
            started = {str(e["encounter_id"]): str(e.get("started_at") or "")
                       for e in source.list_encounters()}
        for encounter_id in unknown:
            when = (started or {}).get(encounter_id) or _first_time(changes, encounter_id)
            if outbox.add_encounter(encounter_id, when, origin="feed", on_server=True):
                result.new_encounters.append(encounter_id)
        new_cursor = page.get("cursor")
        if new_cursor is not None:
            cursor = str(new_cursor)
            outbox.set_meta(CURSOR_KEY, cursor)
        if page.get("done", True) or not changes:
            return result


def _first_time(changes: list[dict[str, Any]], encounter_id: str) -> str:
    times = [str(c.get("at") or "") for c in changes if c.get("encounter_id") == encounter_id]
    return min(times) if times else ""
