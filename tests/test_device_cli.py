"""`safehold device ...` usage: clear one-line errors, the documented exit codes, nothing lost."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crypto import age
from sync.device.state import StateFolder
from sync.upload.outbox import ChunkKey, Outbox
from tests.synckit import cli, outbox_chunks, register, states


def test_commands_need_a_registered_state_folder(tmp_path: Path) -> None:
    for args in (("sync",), ("record", "-", "--offline")):
        done = cli(tmp_path / "nowhere", *args, stdin=b"")
        assert done.returncode == 2
        assert "device register --server URL" in done.stderr
        assert done.stderr.count("\n") == 1  # one line a person can act on


def test_register_keeps_secrets_private_and_refuses_to_register_twice(
        live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    for name in ("device.key", "recovery.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    settings = StateFolder(state).require_registered()
    assert settings.server_key == live_server.server_key()
    again = cli(state, "register", "--server", live_server.url)
    assert again.returncode == 2 and "already holds device" in again.stderr


def test_register_refuses_a_server_answering_under_another_name(
        live_server, tmp_path: Path) -> None:
    # Reached as localhost, the server still calls itself 127.0.0.1:<port>.
    url = live_server.url.replace("127.0.0.1", "localhost")
    done = cli(tmp_path / "phone", "register", "--server", url)
    assert done.returncode == 1 and "calls itself" in done.stderr
    assert not (tmp_path / "phone").exists()  # no keys made for a server we refused


def test_register_with_nothing_listening_is_a_network_error(live_server, tmp_path: Path) -> None:
    from tests.helpers import free_port

    done = cli(tmp_path / "phone", "register", "--server", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 3 and "connection refused" in done.stderr
    assert not (tmp_path / "phone").exists()  # a typo'd URL leaves no key files behind
    # and then the right server: registration works in the same folder
    register(tmp_path / "phone", live_server.url)


def test_record_from_stdin_and_bad_input_are_handled(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    media = os.urandom(2500)
    piped = cli(state, "record", "-", "--chunk-bytes", "1000", stdin=media)
    assert piped.returncode == 0, piped.stderr
    assert states(state) == {"acknowledged": 3 + 5}
    outbox, identity = Outbox(state / "outbox.db"), StateFolder(state).recovery_identity()
    encounter = piped.stdout.strip()
    assert b"".join(age.decrypt(outbox.chunk(ChunkKey(encounter, "audio", seq)).body,
                                [identity]) for seq in range(3)) == media
    for args, message in (
            (("record", str(tmp_path / "missing.bin")), "missing.bin"),
            (("record", str(tmp_path)), "is a folder"),
            (("record", "-", "--stream", "Bad Name"), "stream name"),
            (("record", "-", "--encounter", "42"), "is not an encounter id"),
            (("record", "-", "--chunk-bytes", "0"), "--chunk-bytes")):
        done = cli(state, *args, stdin=b"x")
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert len(outbox_chunks(state)) == 3 + 5  # nothing half-written by the refusals


def test_a_stopped_encounter_cannot_be_continued(live_server, tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, live_server.url)
    first = cli(state, "record", "-", "--chunk-bytes", "10", "--offline", stdin=b"a" * 25)
    encounter = first.stdout.strip()
    stopped = cli(state, "record", "-", "--encounter", encounter, "--stream", "video",
                  stdin=b"v")
    assert stopped.returncode == 2 and "was stopped" in stopped.stderr


def test_contact_commands_need_a_registered_device(tmp_path: Path) -> None:
    # (their behaviour with a registered device: tests/test_contacts_cli.py)
    for args in (("invite",), ("contacts",), ("alert", "x"), ("safe", "x")):
        done = cli(tmp_path, *args)
        assert done.returncode == 2
        assert "register" in done.stderr or "not an encounter id" in done.stderr
