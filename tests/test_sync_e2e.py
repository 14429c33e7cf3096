"""`safehold device record | sync` as real subprocesses against a real server process."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sync.device.state import StateFolder
from sync.upload.outbox import Outbox
from tests.helpers import ServerProcess
from tests.synckit import audit, cli, cli_popen, outbox_chunks, register, states

FAST_SERVER = {"SAFEHOLD_RATE_PER_MINUTE": "100000"}


def test_recorded_with_the_server_down_then_synced_every_chunk_arrives_once(
        make_server, tmp_path: Path) -> None:
    server = make_server(env=FAST_SERVER)
    state = tmp_path / "phone"
    register(state, server.url)
    server.stop()  # the network is gone: nothing listens on the port any more

    (tmp_path / "a.bin").write_bytes(os.urandom(9000))
    live = cli(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "1000")
    assert live.returncode == 3, live.stderr  # recorded, but could not upload
    assert "still queued" in live.stderr and "safe in the outbox" in live.stderr
    first = live.stdout.strip()
    assert str(uuid.UUID(first)) == first
    (tmp_path / "v.bin").write_bytes(os.urandom(2500))
    offline = cli(state, "record", str(tmp_path / "v.bin"), "--stream", "video",
                  "--chunk-bytes", "1000", "--offline")
    assert offline.returncode == 0, offline.stderr
    recorded = outbox_chunks(state)
    assert len(recorded) == (9 + 11) + (3 + 5)  # media + log entries of both recordings
    assert "acknowledged" not in states(state)

    server.start()  # same port, same data folder: the network is back
    synced = cli(state, "sync")
    assert synced.returncode == 0, synced.stderr
    assert states(state) == {"acknowledged": len(recorded)}
    result = audit(state, server.url)
    assert result.clean, result
    assert sum(result.leaf_count.values()) == len(recorded)

    again = cli(state, "sync")  # nothing left: nothing sent, still success
    assert again.returncode == 0 and "sent 0 chunk(s)" in again.stderr
    assert audit(state, server.url).leaf_count == result.leaf_count


def test_sync_reports_a_dead_network_and_keeps_everything(make_server, tmp_path: Path) -> None:
    server = make_server(env=FAST_SERVER)
    state = tmp_path / "phone"
    register(state, server.url)
    server.stop()
    (tmp_path / "a.bin").write_bytes(b"a" * 300)
    assert cli(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "100",
               "--offline").returncode == 0
    before = outbox_chunks(state)
    down = cli(state, "sync")
    assert down.returncode == 3
    assert "connection refused" in down.stderr and "still queued" in down.stderr
    after = outbox_chunks(state)
    assert [(r["encounter"], r["stream"], r["seq"], r["sha256"]) for r in after] == \
        [(r["encounter"], r["stream"], r["seq"], r["sha256"]) for r in before]


def test_a_changed_server_key_is_refused(make_server, tmp_path: Path) -> None:
    server = make_server(env=FAST_SERVER)
    state = tmp_path / "phone"
    register(state, server.url)
    (tmp_path / "a.bin").write_bytes(b"a" * 300)
    assert cli(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "100",
               "--offline").returncode == 0
    server.stop()
    # Another server (another key) now answers at the same address.
    impostor = ServerProcess(tmp_path / "impostor", env=FAST_SERVER, port=server.port).start()
    try:
        refused = cli(state, "sync")
    finally:
        impostor.stop()
    assert refused.returncode == 1
    assert "not the key pinned at registration" in refused.stderr
    assert "acknowledged" not in states(state)


def test_a_second_device_of_the_account_sees_the_encounters(live_server, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    register(phone, live_server.url)
    (tmp_path / "a.bin").write_bytes(b"a" * 300)
    recorded = cli(phone, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "100")
    assert recorded.returncode == 0, recorded.stderr
    encounter = recorded.stdout.strip()

    first = StateFolder(phone)
    linking = cli_popen(phone, "link", "--wait", "60")
    assert linking.stdout is not None
    code = linking.stdout.readline().strip()
    tablet = StateFolder(tmp_path / "tablet")
    added = cli(tablet.path, "add", code, "--server", live_server.url)
    assert added.returncode == 0, added.stderr
    assert linking.wait(timeout=60) == 0
    assert tablet.require_registered().account_id == first.require_registered().account_id

    synced = cli(tablet.path, "sync")
    assert synced.returncode == 0, synced.stderr
    assert f"encounter {encounter} (recorded on another device)" in synced.stdout
    known = Outbox(tablet.path / "outbox.db").encounter(encounter)
    assert known is not None and known["origin"] == "feed"
    # Following the feed again finds nothing new.
    assert cli(tablet.path, "sync").stdout == ""
