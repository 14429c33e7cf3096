"""Files that hold secrets are the server's (or the phone's) user's alone.

The server's database holds webhook secrets and contacts' e-mail addresses; a device's outbox
holds a pending invitation's secret. Both are made private when created, and tightened (with a
warning) when found open to other users.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import PYTHON, ROOT, ServerProcess, registered_device


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.sqlite_only("file modes of the SQLite file and its WAL")
def test_new_data_dir_database_and_wal_are_private(make_server, tmp_path: Path) -> None:
    for kind in ("serve", "gunicorn"):
        folder = tmp_path / kind / "fresh"  # the server makes it (umask 022 in this test)
        server = make_server(kind=kind, data_dir=tmp_path / kind,
                             env={"SAFEHOLD_DATA_DIR": str(folder)})
        phone = registered_device(server.url, server.name)
        phone.upload(phone.new_encounter(), "audio", 0)
        assert mode(folder) == 0o700, kind
        assert "readable by other users" not in server.output()  # made private, not fixed
        made = [p for p in folder.rglob("*")]
        database = folder / "safehold.sqlite3"
        assert database in made and Path(f"{database}-wal") in made, kind
        for path in made:
            expected = 0o700 if path.is_dir() else 0o600
            assert mode(path) == expected, (kind, path, oct(mode(path)))


@pytest.mark.sqlite_only("file modes of the SQLite file")
def test_existing_open_data_dir_is_tightened_with_a_warning(make_server, tmp_path: Path) -> None:
    folder = tmp_path / "old-data"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    database = folder / "safehold.sqlite3"
    database.write_bytes(b"")
    os.chmod(database, 0o644)
    server = make_server(data_dir=folder)
    assert mode(folder) == 0o700 and mode(database) == 0o600
    assert "was readable by other users (mode 755); changed it to 700" in server.output()
    assert "mode 644); changed it to 600" in server.output()


def run_cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    return subprocess.run([PYTHON, "-m", "cli.main", *args, "--state", str(state)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=lambda: os.umask(0o022))


def test_device_state_in_an_existing_open_folder_is_made_private(
        live_server: ServerProcess, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    state.mkdir()
    os.chmod(state, 0o755)  # e.g. made by hand, or by a backup restore
    registered = run_cli("device", "register", "--server", live_server.url, state=state)
    assert registered.returncode == 0, registered.stderr
    invited = run_cli("device", "invite", "--long", "--name", "Mom", state=state)
    assert invited.returncode == 0, invited.stderr
    assert mode(state) == 0o700
    assert "changed it to 700" in registered.stderr
    outbox = state / "outbox.db"
    assert outbox.exists()
    for path in state.iterdir():
        if path.name.startswith("outbox.db") or path.suffix == ".key":
            assert mode(path) == 0o600, (path, oct(mode(path)))
    # An outbox left world-readable by an older version is tightened on the next command.
    os.chmod(outbox, 0o644)
    os.chmod(state, 0o755)
    listed = run_cli("device", "contacts", state=state)
    assert listed.returncode == 0, listed.stderr
    assert mode(state) == 0o700 and mode(outbox) == 0o600
    assert "readable by other users (mode 644)" in listed.stderr
