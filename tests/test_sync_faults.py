"""The client against a broken network and a killed process: nothing lost, nothing doubled."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.faultproxy import KINDS, Fault, FaultProxy
from tests.helpers import ServerProcess, free_port
from tests.synckit import audit, cli, cli_popen, outbox_chunks, register, states, wait_until

FAST_SERVER = {"SAFEHOLD_RATE_PER_MINUTE": "100000"}


def faults_in_turn(count: int, max_after: int, stall_seconds: float):
    """The first `count` connections each get a fault (kinds in turn, at varied offsets)."""
    offsets = [(i * 337) % max_after for i in range(count)]

    def plan(index: int) -> Fault:
        if index >= count:
            return Fault()
        return Fault(KINDS[index % len(KINDS)], offsets[index], stall_seconds)

    return plan


@pytest.fixture
def proxied_server(tmp_path: Path):
    """A server whose public address is a fault proxy in front of it (as behind a balancer)."""
    server_port = free_port()
    proxy = FaultProxy(server_port).start()
    server = ServerProcess(tmp_path / "data", port=server_port,
                           env={**FAST_SERVER, "SAFEHOLD_PUBLIC_URL": proxy.url}).start()
    yield proxy, server
    server.stop()
    proxy.stop()


def test_recording_through_resets_stalls_and_truncations_arrives_intact(
        proxied_server, tmp_path: Path) -> None:
    proxy, server = proxied_server
    state = tmp_path / "phone"
    register(state, proxy.url)
    proxy.connections = 0
    proxy.plan = faults_in_turn(12, max_after=1500, stall_seconds=2.0)
    (tmp_path / "a.bin").write_bytes(os.urandom(40_000))
    done = cli(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "2000",
               "--rate", "40000", env={"SAFEHOLD_HTTP_TIMEOUT": "1",
                                       "SAFEHOLD_SYNC_PATIENCE": "30"})
    assert done.returncode == 0, done.stderr
    assert all(proxy.injected[kind] >= 1 for kind in KINDS), proxy.injected
    assert states(state) == {"acknowledged": 20 + 22}
    result = audit(state, server.url)  # straight to the server, past the proxy
    assert result.clean, result


def test_kill_9_during_a_live_recording_then_sync(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    (tmp_path / "a.bin").write_bytes(os.urandom(60_000))
    recording = cli_popen(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "1000",
                          "--rate", "10000")

    def some_sent() -> bool:
        rows = outbox_chunks(state) if (state / "outbox.db").exists() else []
        return sum(r["stream"] == "audio" for r in rows) >= 12 and \
            any(r["state"] == "acknowledged" for r in rows)

    wait_until(some_sent, what="a dozen chunks recorded and some sent")
    recording.send_signal(signal.SIGKILL)
    recording.wait()
    committed = outbox_chunks(state)
    assert sum(r["stream"] == "audio" for r in committed) < 60  # really cut mid-way

    synced = cli(state, "sync")
    assert synced.returncode == 0, synced.stderr
    assert states(state) == {"acknowledged": len(committed)}
    result = audit(state, live_server.url)
    assert result.clean, result
    audio = [r for r in committed if r["stream"] == "audio"]
    assert not any(r["final"] for r in audio)  # cut off, and the server says so too
    encounter = audio[0]["encounter"]
    from tests.synckit import api_for
    held = api_for(state, live_server.url).encounter(encounter)["streams"]
    assert held["audio"]["final_seq"] is None
    assert held["audio"]["seqs"] == sorted(r["seq"] for r in audio)


def test_kill_9_during_sync_then_sync_again(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    (tmp_path / "a.bin").write_bytes(os.urandom(150 * 200))
    assert cli(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "200",
               "--offline").returncode == 0
    total = len(outbox_chunks(state))
    syncing = cli_popen(state, "sync", env={"SAFEHOLD_SYNC_WORKERS": "2"})
    wait_until(lambda: states(state)["acknowledged"] >= 30, what="30 chunks acknowledged")
    syncing.send_signal(signal.SIGKILL)
    syncing.wait()
    cut = states(state)
    assert cut["acknowledged"] < total, cut  # really cut mid-way
    assert set(cut) <= {"acknowledged", "queued", "uploading"}

    synced = cli(state, "sync")
    assert synced.returncode == 0, synced.stderr
    assert states(state) == {"acknowledged": total}
    result = audit(state, live_server.url)
    assert result.clean, result
