"""kill -9 of gunicorn (master and every worker) while chunks stream in from several threads.

After each crash the server restarts on the same data folder. Every chunk acknowledged before the
crash must still be there, byte for byte, with a receipt that verifies against the restarted
server's checkpoints; then the phone's retries complete the rest, each chunk logged once.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import Device, registered_device
from log_audit import Gunicorn, Sealed, audit_log, clone, get_json, seal_many, verify_against_latest


@dataclass
class Round:
    acked: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    unacked: list[Sealed] = field(default_factory=list)
    refused: list[tuple[Sealed, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def group_members_alive(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (PID 1 of a container may not reap them)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def kill_dash_nine(server: Gunicorn) -> None:
    assert server.proc is not None
    pgid = server.proc.pid  # started with start_new_session: the master leads the group
    assert len(group_members_alive(pgid)) == 1 + server.workers
    os.killpg(pgid, signal.SIGKILL)
    server.proc.wait()
    deadline = time.monotonic() + 10
    while group_members_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert group_members_alive(pgid) == [], "a gunicorn worker survived kill -9"


def stream(device: Device, chunks: list[Sealed], threads: int, server: Gunicorn,
           kill_after: int | None) -> Round:
    """Upload from `threads` threads; kill -9 the server once `kill_after` chunks are acked."""
    todo: queue.Queue[Sealed] = queue.Queue()
    for chunk in chunks:
        todo.put(chunk)
    result = Round()

    def worker() -> None:
        mine = clone(device)
        while True:
            try:
                chunk = todo.get_nowait()
            except queue.Empty:
                return
            try:
                response = mine.put_chunk(chunk.encounter, chunk.stream, chunk.seq,
                                          chunk.body, chunk.note)
            except requests.RequestException:
                with result.lock:
                    result.unacked.append(chunk)  # the phone keeps it queued and retries
                continue
            with result.lock:
                if response.status_code in (200, 201):
                    result.acked[(chunk.stream, chunk.seq)] = response.json()
                else:
                    result.refused.append((chunk, response.status_code, response.text))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    if kill_after is not None:
        while len(result.acked) < kill_after and any(t.is_alive() for t in pool):
            time.sleep(0.005)
        kill_dash_nine(server)
    for thread in pool:
        thread.join()
    while not todo.empty():
        result.unacked.append(todo.get_nowait())
    assert result.refused == [], result.refused[:3]
    return result


def check_acknowledged(device: Device, server: Gunicorn, by_slot: dict[tuple[str, int], Sealed],
                       acked: dict[tuple[str, int], dict[str, Any]]) -> None:
    """Every acknowledged chunk is stored byte-identical and its receipt verifies now."""
    encounter = next(iter(by_slot.values())).encounter
    server_key = server.server_key()
    latest, _leaves = audit_log(device, encounter, server_key)
    for (stream_name, seq), receipt in acked.items():
        chunk = by_slot[(stream_name, seq)]
        path = f"/v1/encounters/{encounter}/streams/{stream_name}/chunks/{seq}"
        assert device.call("GET", path).content == chunk.body
        verify_against_latest(device, receipt, chunk.note, server_key, latest)


def blob_files(data_dir: Path) -> dict[str, str]:
    root = data_dir / "blobs"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")}


@pytest.mark.slow
def test_acknowledged_chunks_survive_kill_dash_nine(tmp_path: Path) -> None:
    server = Gunicorn(tmp_path / "data", workers=3).start()
    try:
        device = registered_device(server.url, server.name)
        encounter = device.new_encounter()
        sent = seal_many(device, encounter, {"log": 30, "audio": 60, "video": 60},
                         payload_bytes=48 * 1024)
        by_slot = {(c.stream, c.seq): c for c in sent}
        acked: dict[tuple[str, int], dict[str, Any]] = {}
        pending = sent
        for kill_after in (40, 50):  # two crashes, the second one in the middle of the retries
            crashed = stream(device, pending, threads=6, server=server, kill_after=kill_after)
            assert crashed.unacked, "the crash came too late to interrupt anything"
            acked.update(crashed.acked)
            server.start()
            check_acknowledged(device, server, by_slot, acked)
            pending = crashed.unacked

        # The phone retries what was never acknowledged, plus some that were (lost replies).
        resent = pending + [by_slot[slot] for slot in list(acked)[:10]]
        final = stream(device, resent, threads=6, server=server, kill_after=None)
        assert final.unacked == []
        for slot, receipt in final.acked.items():
            if slot in acked:  # the same chunk again: the receipt of the first time
                assert receipt == acked[slot]
        acked.update(final.acked)
        assert set(acked) == set(by_slot)

        check_acknowledged(device, server, by_slot, acked)
        latest, leaves = audit_log(device, encounter, server.server_key())
        assert sorted(leaves) == sorted(c.note.encode() for c in sent)
        info = get_json(device, f"/v1/encounters/{encounter}")
        assert info["streams"] == {
            "log": {"seqs": list(range(30)), "final_seq": 29},
            "audio": {"seqs": list(range(60)), "final_seq": 59},
            "video": {"seqs": list(range(60)), "final_seq": 59}}
        assert blob_files(server.data_dir) == {
            f"encounters/{encounter}/{c.stream}/{c.seq:08d}.age":
                hashlib.sha256(c.body).hexdigest() for c in sent}
    finally:
        server.stop()
