"""Starting the production server (gunicorn with server/gunicorn_conf.py) on settings or a
database that cannot work: it refuses before forking a worker, with one line saying what to do."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers import PYTHON, ROOT, ServerProcess, free_port, registered_device


def start_gunicorn(data_dir: Path, public_url: str | None) -> subprocess.CompletedProcess[str]:
    """gunicorn as the Procfile runs it; returns once it exits (it must, on a refusal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env["SAFEHOLD_DATA_DIR"] = str(data_dir)
    if public_url:
        env["SAFEHOLD_PUBLIC_URL"] = public_url
    return subprocess.run(
        [PYTHON, "-m", "gunicorn", "--config", "server/gunicorn_conf.py", "--bind",
         f"127.0.0.1:{free_port()}", "--workers", "2", "server.wsgi:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def refusal_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Booting worker" not in result.stderr  # refused before any worker started
    [line] = [json.loads(text)["message"] for text in result.stderr.splitlines()
              if "not starting" in text]
    return str(line)


def test_no_public_url_refuses_to_start_and_names_the_fix(tmp_path: Path) -> None:
    line = refusal_line(start_gunicorn(tmp_path / "data", None))
    assert "SAFEHOLD_PUBLIC_URL is not set" in line and "docs/operations.md" in line
    assert not (tmp_path / "data" / "server.key").exists()  # no key named localhost:8000


def test_key_named_for_another_url_refuses_in_one_line(make_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_server(kind="gunicorn", data_dir=data).stop()  # made the key for 127.0.0.1:<port>
    line = refusal_line(start_gunicorn(data, "https://safehold.example.org"))
    assert "named '127.0.0.1:" in line and "safehold.example.org" in line
    assert "SAFEHOLD_SERVER_KEY_FILE" in line


def damage(database: Path) -> None:
    db = sqlite3.connect(database)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    db.close()
    pages = database.stat().st_size // 4096
    assert pages > 4
    with database.open("r+b") as raw:
        raw.seek(4096 * 2)
        raw.write(b"\xa5" * 4096 * (pages - 3))


@pytest.mark.sqlite_only("damages pages of the SQLite file")
def test_damaged_database_refuses_to_start(make_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = make_server(data_dir=data)
    phone = registered_device(server.url, server.name)
    phone.upload(phone.new_encounter(), "audio", 0)
    server.stop()
    damage(data / "safehold.sqlite3")
    line = refusal_line(start_gunicorn(data, server.url))
    assert "is damaged (SQLite quick_check:" in line and "restore it from a backup" in line
    # The development server and the worker say the same, as CLI errors (exit 2, one line).
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(SAFEHOLD_DATA_DIR=str(data), SAFEHOLD_PUBLIC_URL=server.url)
    for command in (["serve", "--port", str(free_port())], ["worker"], ["migrate"]):
        done = subprocess.run([PYTHON, "-m", "cli.main", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, (command, done.stderr)
        errors = [text for text in done.stderr.splitlines() if "is damaged" in text]
        assert len(errors) == 1 and "Traceback" not in done.stderr, (command, done.stderr)


def test_healthy_restart_still_starts(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", kind="gunicorn").start()
    try:
        phone = registered_device(server.url, server.name)
        phone.upload(phone.new_encounter(), "audio", 0)
    finally:
        server.stop()
    again = ServerProcess(tmp_path / "data", kind="gunicorn", port=server.port).start()
    again.stop()
