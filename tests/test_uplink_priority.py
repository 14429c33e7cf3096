"""Priority on a jammed link: audio recorded live goes through while a video backlog waits.

A real server behind a slow shaped link (tests/shapedlink.py); a video recording queued offline
(a backlog far larger than the link carries in the time), then a live audio recording on the
same phone. The test watches the outbox (read-only) as a user's second screen would.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from pathlib import Path

from tests.helpers import ServerProcess, free_port
from tests.shapedlink import shaped
from tests.synckit import audit, cli, cli_popen, outbox_chunks, register, states

FAST_SERVER = {"SAFEHOLD_RATE_PER_MINUTE": "100000"}


def audio_waiting(state: Path) -> bool:
    db = sqlite3.connect(f"file:{state / 'outbox.db'}?mode=ro", uri=True, timeout=30)
    try:
        return bool(db.execute("SELECT COUNT(*) FROM chunks WHERE stream = 'audio' AND"
                               " state != 'acknowledged'").fetchone()[0])
    finally:
        db.close()


def test_audio_is_acknowledged_while_the_video_backlog_waits(tmp_path: Path) -> None:
    server_port = free_port()
    link = shaped(server_port, up_rate=96_000, down_rate=200_000, delay=0.03).start()
    server = ServerProcess(tmp_path / "data", port=server_port,
                           env={**FAST_SERVER, "SAFEHOLD_PUBLIC_URL": link.url}).start()
    try:
        state = tmp_path / "phone"
        register(state, link.url)
        encounter = str(uuid.uuid4())
        (tmp_path / "v.bin").write_bytes(os.urandom(10 * 80_000))  # eight seconds of the link
        assert cli(state, "record", str(tmp_path / "v.bin"), "--stream", "video",
                   "--encounter", encounter, "--chunk-bytes", "80000",
                   "--offline").returncode == 0
        (tmp_path / "a.bin").write_bytes(os.urandom(8 * 4000))
        # A new encounter: priority holds across all streams of the device.
        audio = cli_popen(state, "record", str(tmp_path / "a.bin"), "--stream", "audio",
                          "--chunk-bytes", "4000", "--rate", "8000")

        # Video bodies being sent (on the link: requests that carried more than an audio chunk
        # and not yet all their body) at moments when an audio chunk waits for its receipt.
        link.heavy_bytes = 40_000  # half a video chunk: more than the socket buffers hold
        most_video_at_once = 0
        stop = threading.Event()

        def watch() -> None:
            nonlocal most_video_at_once
            while not stop.wait(0.02):
                heavy = link.heavy
                if audio_waiting(state):
                    most_video_at_once = max(most_video_at_once, heavy)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _out, err = audio.communicate(timeout=120)
        stop.set()
        watcher.join()
        assert audio.returncode == 0, err  # it returns when ITS chunks are safe

        rows = outbox_chunks(state)
        sent_audio = [r for r in rows if r["stream"] == "audio"]
        assert len(sent_audio) == 8 and all(r["state"] == "acknowledged" for r in sent_audio)
        video = [r for r in rows if r["stream"] == "video"]
        # The audio went first: when its recording was safe, most of the video still waited,
        # and while audio was waiting never more than one video body took the link.
        assert sum(r["state"] != "acknowledged" for r in video) >= 4, video
        assert most_video_at_once == 1

        synced = cli(state, "sync")  # then the video catches up; nothing was dropped
        assert synced.returncode == 0, synced.stderr
        assert states(state) == {"acknowledged": len(outbox_chunks(state))}
        result = audit(state, server.url)
        assert result.clean, result
    finally:
        server.stop()
        link.stop()
