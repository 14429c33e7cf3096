"""One upload queue per phone: `record` and `sync` processes on one state share one uploader.

Real `safehold device` subprocesses against a real `safehold serve`; the server's access log
says how often each chunk was PUT.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

from sync.upload.uplink import holder_pid
from tests.helpers import ServerProcess, free_port
from tests.shapedlink import shaped
from tests.synckit import audit, cli, cli_popen, outbox_chunks, register, states, wait_until

FAST_SERVER = {"SAFEHOLD_RATE_PER_MINUTE": "100000"}
# The server's access log (one JSON line per request; werkzeug's own line is not counted).
PUT_LINE = re.compile(r'"message": "PUT (/v1/encounters/[0-9a-f-]+/streams/\w+/chunks/\d+) ')


def chunk_puts(server: ServerProcess) -> Counter[str]:
    return Counter(PUT_LINE.findall(server.output()))


def chunk_path(row: dict) -> str:
    return f"/v1/encounters/{row['encounter']}/streams/{row['stream']}/chunks/{row['seq']}"


def recording(state: Path, source: Path, stream: str, encounter: str, size: int,
              rate: int):
    return cli_popen(state, "record", str(source), "--stream", stream, "--encounter", encounter,
                     "--chunk-bytes", str(size), "--rate", str(rate))


def test_two_recordings_and_a_sync_upload_every_chunk_exactly_once(make_server,
                                                                   tmp_path: Path) -> None:
    server = make_server(env=FAST_SERVER)
    state = tmp_path / "phone"
    register(state, server.url)
    (tmp_path / "backlog.bin").write_bytes(os.urandom(6000))  # queued earlier, offline
    assert cli(state, "record", str(tmp_path / "backlog.bin"), "--chunk-bytes", "1000",
               "--offline").returncode == 0
    encounter = str(uuid.uuid4())
    (tmp_path / "a.bin").write_bytes(os.urandom(16_000))
    (tmp_path / "v.bin").write_bytes(os.urandom(48_000))
    audio = recording(state, tmp_path / "a.bin", "audio", encounter, 1000, 8000)
    video = recording(state, tmp_path / "v.bin", "video", encounter, 4000, 24000)
    wait_until(lambda: len(outbox_chunks(state)) > 20, what="both recordings under way")
    syncing = cli_popen(state, "sync")
    for proc in (audio, video, syncing):
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    rows = outbox_chunks(state)
    assert states(state) == {"acknowledged": len(rows)}
    mine = [r for r in rows if r["encounter"] == encounter]
    assert sum(r["stream"] == "audio" for r in mine) == 16
    assert sum(r["stream"] == "video" for r in mine) == 12
    assert sum(r["stream"] == "log" for r in mine) == 2 * 2 + 16 + 12  # start/stop + chunks
    puts = chunk_puts(server)
    assert {chunk_path(r) for r in rows} == set(puts)
    assert [path for path, n in puts.items() if n != 1] == []  # every chunk PUT exactly once
    result = audit(state, server.url)
    assert result.clean, result


def test_kill_9_of_the_uploading_process_another_takes_over_and_finishes(
        tmp_path: Path) -> None:
    server_port = free_port()
    link = shaped(server_port, up_rate=24_000, down_rate=200_000, delay=0.02).start()
    server = ServerProcess(tmp_path / "data", port=server_port,
                           env={**FAST_SERVER, "SAFEHOLD_PUBLIC_URL": link.url}).start()
    try:
        state = tmp_path / "phone"
        register(state, link.url)
        encounter = str(uuid.uuid4())
        (tmp_path / "a.bin").write_bytes(os.urandom(40_000))
        (tmp_path / "b.bin").write_bytes(os.urandom(40_000))
        first = recording(state, tmp_path / "a.bin", "audio", encounter, 4000, 16000)
        second = recording(state, tmp_path / "b.bin", "video", encounter, 4000, 16000)
        procs = {first.pid: first, second.pid: second}
        wait_until(lambda: holder_pid(state) in procs and states(state)["acknowledged"] >= 3,
                   what="one recorder uploading, some chunks acknowledged")
        leader = procs.pop(holder_pid(state))  # type: ignore[arg-type]
        (survivor,) = procs.values()
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        wait_until(lambda: holder_pid(state) == survivor.pid, timeout=30,
                   what="the surviving recorder takes the upload over")
        _out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, err
        rows = outbox_chunks(state)
        stream = "video" if leader is first else "audio"
        own = [r for r in rows if r["stream"] == stream]
        assert len(own) == 10 and all(r["state"] == "acknowledged" for r in own)

        synced = cli(state, "sync")  # whatever the killed recorder left, nothing is lost
        assert synced.returncode == 0, synced.stderr
        assert states(state) == {"acknowledged": len(outbox_chunks(state))}
        result = audit(state, server.url)
        assert result.clean, result
    finally:
        server.stop()
        link.stop()


def test_the_waiting_line_comes_at_once_and_says_what_is_safe(make_server,
                                                              tmp_path: Path) -> None:
    server = make_server(env=FAST_SERVER)
    state = tmp_path / "phone"
    register(state, server.url)
    (tmp_path / "a.bin").write_bytes(os.urandom(5000))
    assert cli(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "1000",
               "--offline").returncode == 0
    queued = len(outbox_chunks(state))
    server.stop()

    started = time.monotonic()
    syncing = cli_popen(state, "sync", env={"SAFEHOLD_SYNC_PATIENCE": "60"})
    assert syncing.stderr is not None
    line = syncing.stderr.readline()
    shown_after = time.monotonic() - started
    assert "the server is unreachable (" in line and "connection refused" in line, line
    assert f"{queued} chunk(s) are safe in the outbox" in line, line
    assert "Retrying for up to 60 s" in line and "SAFEHOLD_SYNC_PATIENCE" in line, line
    # The process started, failed its first attempt and said so: generously within 10 s of
    # its start (the first attempt is made at once; the line must follow within 2 s).
    assert shown_after < 10, shown_after
    assert syncing.poll() is None  # still retrying, not given up

    server.start()
    _out, err = syncing.communicate(timeout=120)
    assert syncing.returncode == 0, err
    assert "the server is reachable again" in err
    assert states(state) == {"acknowledged": queued}


def test_help_says_how_long_it_retries_and_how_to_change_it() -> None:
    from cli.main import build_parser

    parser = build_parser()
    for command in ("record", "sync"):
        text = _help(parser, command)
        assert "SAFEHOLD_SYNC_PATIENCE" in text and "one upload queue" in text


def _help(parser, command: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parser.parse_args(["device", command, "--help"])
    return " ".join(out.getvalue().split())


def test_a_waiting_recorder_also_hears_that_the_server_is_unreachable(make_server,
                                                                      tmp_path: Path) -> None:
    server = make_server(env=FAST_SERVER)
    state = tmp_path / "phone"
    register(state, server.url)
    server.stop()
    (tmp_path / "a.bin").write_bytes(os.urandom(8000))
    (tmp_path / "v.bin").write_bytes(os.urandom(8000))
    slow = {"SAFEHOLD_SYNC_PATIENCE": "2"}
    first = cli_popen(state, "record", str(tmp_path / "a.bin"), "--chunk-bytes", "1000",
                      "--rate", "2000", env=slow)
    wait_until(lambda: holder_pid(state) == first.pid, what="the first recorder uploads")
    second = cli_popen(state, "record", str(tmp_path / "v.bin"), "--stream", "video",
                       "--chunk-bytes", "1000", "--rate", "4000", env=slow)
    _out, err = second.communicate(timeout=120)
    first.communicate(timeout=120)
    # The second never held the lease while the first was retrying, yet its user is told.
    assert second.returncode == 3, err
    assert "the server is unreachable (" in err and "safe in the outbox" in err, err
    assert "still queued, safe in the outbox" in err
    assert "acknowledged" not in states(state)
