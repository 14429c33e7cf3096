"""Keep the data folder and the database private to the server's user.

The database holds webhook secrets and contacts' e-mail addresses. SQLite creates its file with
the process umask (often 0644), and gives the -wal and -shm files the main file's mode, so the
main file is created 0600 before SQLite opens it, and the folder is made 0700. A folder or file
that already exists with wider permissions is tightened, with a warning saying so.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("safehold.server")
FOLDER_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        os.chmod(path, mode)
        log.warning("%s was readable by other users (mode %o); changed it to %o",
                    path, current, mode)


def private_folder(folder: Path) -> None:
    """Create `folder` (and parents) 0700, or tighten it if it exists."""
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    _tighten(folder, FOLDER_MODE)


def private_database(database: Path) -> None:
    """The folder 0700; the database file (created empty if missing) and its SQLite side files
    0600, before SQLite opens it."""
    private_folder(database.parent)
    fd = os.open(database, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    os.close(fd)
    _tighten(database, FILE_MODE)
    for suffix in SQLITE_SIDE_FILES:
        side = database.with_name(database.name + suffix)
        if side.exists():
            _tighten(side, FILE_MODE)
