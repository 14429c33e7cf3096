"""A full disk, and damaged database pages, under a running server: every refusal is the
documented 503 `storage_unavailable` (never a 500 carrying `sqlite3 … disk is full`), /readyz
says so, nothing half-written is left, and after a full disk the server recovers by itself once
there is room again.

The data folder is a small tmpfs mounted for the test (needs root, as CI and this machine run);
filling it is a real ENOSPC for SQLite and the blob store alike.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import Device, ServerProcess, error_of, registered_device

MOUNT_MB = 24


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MOUNT_MB}m", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte (bounded: the disk is MOUNT_MB)."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with filler.open("wb") as out:
        for _ in range(MOUNT_MB * 16 + 16):
            try:
                out.write(block)
                out.flush()
            except OSError:
                break
    return filler


def new_encounter(phone: Device) -> tuple[str, requests.Response]:
    encounter = str(uuid.uuid4())
    return encounter, phone.call("PUT", f"/v1/encounters/{encounter}",
                                 json={"started_at": "2026-11-28T03:30:00.000Z"})


@pytest.mark.sqlite_only("fills the disk under the SQLite file")
def test_disk_full_is_503_storage_unavailable_everywhere(small_disk: Path) -> None:
    server = ServerProcess(small_disk / "data", kind="gunicorn",
                           env={"SAFEHOLD_RATE_PER_MINUTE": "100000"}).start()
    try:
        phone = registered_device(server.url, server.name)
        encounter = phone.new_encounter()
        phone.upload(encounter, "audio", 0)
        assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
        filler = fill(small_disk)
        body, note = phone.seal(encounter, "audio", 1, payload=b"a" * 4000)
        refused = phone.put_chunk(encounter, "audio", 1, body, note)
        assert error_of(refused) == (503, "storage_unavailable")
        made, answers = [], []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(answers) < 300:  # until the WAL needs room
            encounter_id, answer = new_encounter(phone)
            answers.append(answer)
            if answer.status_code != 201:
                break
            made.append(encounter_id)
        assert error_of(answers[-1]) == (503, "storage_unavailable"), answers[-1].text
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert "sqlite" not in answers[-1].text.lower()
        ready = requests.get(server.url + "/readyz", timeout=10)
        assert error_of(ready) == (503, "not_ready")
        assert ready.json()["error"]["details"]["blob_store"] == "disk full"
        # Room again: the same server takes the same requests, with nothing half-done before.
        filler.unlink()
        assert phone.put_chunk(encounter, "audio", 1, body, note).status_code == 201
        assert new_encounter(phone)[1].status_code == 201
        assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
        listed = {e["encounter_id"] for e in phone.call("GET", "/v1/encounters").json()[
            "encounters"]}
        assert set(made) <= listed and len(listed) == len(made) + 2
    finally:
        server.stop()
    output = server.output()
    assert "storage full while serving a request" in output  # the operator is told why
    assert "disk is full" in output  # ... with SQLite's own words, in the log only
    assert '"status": 500' not in output


@pytest.mark.sqlite_only("damages pages of the SQLite file")
def test_damaged_pages_under_a_running_server_are_503_and_not_ready(make_server) -> None:
    server = make_server()  # `safehold serve`: each request thread opens its own connection
    phone = registered_device(server.url, server.name)
    encounter = phone.new_encounter()
    phone.upload(encounter, "audio", 0)
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
    database = server.data_dir / "safehold.sqlite3"
    db = sqlite3.connect(database)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with database.open("r+b") as raw:  # every page after the schema's
        raw.seek(4096 * 2)
        raw.write(b"\xa5" * (database.stat().st_size - 4096 * 2))
    answers = [phone.call("GET", f"/v1/encounters/{encounter}") for _ in range(3)]
    assert [error_of(a) for a in answers] == [(503, "storage_unavailable")] * 3
    ready = requests.get(server.url + "/readyz", timeout=10)
    assert error_of(ready) == (503, "not_ready")
    assert ready.json()["error"]["details"]["database"] == "damaged"
    server.stop()
    assert "storage damaged while serving a request" in server.output()
