"""Where `safehold fetch` may write: a new or empty folder, or a bundle of the same encounter.

`fetch -o .` once scattered a bundle among the files of the current folder. A folder is taken
only when it is new, empty, a complete bundle of the same encounter (updated in place), or an
interrupted fetch of it (resumed: the marker sync/bundle/files.py FETCHING names the encounter).
"""

from __future__ import annotations

import json
from pathlib import Path

from sync.bundle.files import FETCHING, MANIFEST
from sync.bundle.limits import MAX_MANIFEST
from sync.safetext import safe_text


def _encounter_of(path: Path) -> str:
    """The encounter id a manifest or fetch marker names; "" if it names none (damaged)."""
    try:
        with open(path, "rb") as stream:
            value = json.loads(stream.read(MAX_MANIFEST + 1)).get("encounter_id")
    except (OSError, ValueError, AttributeError):
        return ""
    return safe_text(value) if isinstance(value, str) else ""


def fetch_destination_problem(dest: Path, encounter_id: str) -> str | None:
    """Why `fetch` must not write into `dest`, or None: a new or empty folder, a bundle of the
    same encounter (updated), or an interrupted fetch of it (resumed). Anything else is
    somebody's files: `-o .` must not scatter a bundle among them."""
    if not dest.exists():
        return None
    if not dest.is_dir():
        return f"{dest} exists and is not a folder; choose a new folder for the bundle"
    if not any(dest.iterdir()):
        return None
    for marker in (dest / MANIFEST, dest / FETCHING):
        if marker.is_file():
            found = _encounter_of(marker)
            if found == encounter_id:
                return None
            return (f"{dest} holds a bundle of encounter {found or '(unreadable)'}, not "
                    f"{encounter_id}; choose another folder")
    return (f"{dest} is a folder with other files in it, not a bundle of this encounter; "
            "choose a new or empty folder for the bundle (nothing was written)")
