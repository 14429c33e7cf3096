"""A hostile (or careless) operator against a real server process: attacks done the way an
operator would do them, with the database file, SQL and the disk (issue 10).

Organised by attack; each section says what the operator does and who must notice. Every
attack ends in a non-zero exit that names what happened.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests import synckit
from tests.helpers import ServerProcess
from tests.hostilekit import behind_hostile, huge_checkpoint, read_key, rewritten_log

pytestmark = pytest.mark.sqlite_only("restores SQLite file copies as backups, edits rows")


def _record(phone: Path, tmp_path: Path, chunks: int) -> str:
    """`device record` of `chunks` random 4 KiB chunks; the new encounter's id."""
    source = tmp_path / "audio.bin"
    source.write_bytes(os.urandom(chunks * 4096))
    done = synckit.cli(phone, "record", str(source), "--chunk-bytes", "4096")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[0]


def _owner_fetch(phone: Path, encounter: str, bundle: Path) -> subprocess.CompletedProcess[str]:
    """`safehold fetch` by the owner's own device (its state folder)."""
    return subprocess.run([synckit.PYTHON, "-m", "cli.main", "fetch", encounter, "-o", str(bundle),
                           "--state", str(phone)], cwd=synckit.ROOT, env=synckit.client_env(),
                          capture_output=True, text=True, timeout=120)


def _online_backup(database: Path, target: Path) -> None:
    """docs/operations.md, "Backups": an online, consistent copy (sqlite3 .backup)."""
    with sqlite3.connect(database) as live, sqlite3.connect(target) as copy:
        live.backup(copy)


def _restore(server: ServerProcess, backup: Path) -> ServerProcess:
    """Stop, put the backup back in place (WAL and SHM of the newer database removed), start."""
    server.stop()
    database = server.data_dir / "safehold.sqlite3"
    for stale in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)
    os.replace(backup, database)
    return ServerProcess(server.data_dir, port=server.port).start()


# --- Attack: restore a database backup taken half-way through a recording ----------------------
# The operator restores an older database: the log of the encounter is shorter than the
# checkpoint the phone verified, and the chunks acknowledged after the backup are forgotten.


def test_backup_restore_is_rollback_named_by_device_sync(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        phone = tmp_path / "phone"
        synckit.register(phone, server.url)
        source = tmp_path / "audio.bin"
        source.write_bytes(os.urandom(8 * 4096))
        live = synckit.cli_popen(phone, "record", str(source), "--chunk-bytes", "4096",
                                 "--stream", "audio", "--rate", "8192")
        synckit.wait_until(lambda: _acknowledged(phone) >= 4, 30,
                           "half of the recording acknowledged")
        backup = tmp_path / "backup.sqlite3"
        _online_backup(server.data_dir / "safehold.sqlite3", backup)  # half-way through
        out, err = live.communicate(timeout=60)
        assert live.returncode == 0, err
        encounter = out.strip().splitlines()[0]
        acked = [c for c in synckit.outbox_chunks(phone) if c["state"] == "acknowledged"]
        assert len(acked) == len(synckit.outbox_chunks(phone))

        server = _restore(server, backup)
        # the owner's own fetch compares the served log with the checkpoints the phone verified
        # and writes nothing (no bundle that would verify as merely "cut off")
        bundle = tmp_path / "bundle"
        refused = _owner_fetch(phone, encounter, bundle)
        assert refused.returncode == 1, refused.stderr
        told = refused.stderr.strip().splitlines()[-1]
        assert f"encounter {encounter}: the server's log was rolled back" in told, told
        assert "Fetched" not in refused.stdout and "OK" not in refused.stdout, refused.stdout
        assert not bundle.exists() or not any(bundle.iterdir())

        done = synckit.cli(phone, "sync")
        assert done.returncode == 1, done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert encounter in line and "rolled back" in line, line
        # the sizes held vs served, and how many acknowledged chunks the server lost
        held, served, lost = _sizes(line)
        assert served < held and lost == held - served >= 1, line
        assert (f"you hold its signed checkpoint of size {held}, from a receipt this device "
                f"verified; the server now serves size {served})") in told, told
        # the phone still held the bodies and sent them again, and proved every chunk of the
        # encounter in the log the server keeps now
        assert (f"this device sent them again and all {len(acked)} are acknowledged in the "
                "server's log now") in line, line
        assert _server_seqs(phone, server.url, encounter, "audio") == set(range(8))
        assert synckit.states(phone) == {"acknowledged": len(acked)}
        assert synckit.audit(phone, server.url).missing == []

        # re-anchored on the new log: later syncs settle, and the finding stays on the device
        again = synckit.cli(phone, "sync")
        assert again.returncode == 0, again.stderr
        assert "1 tampering finding(s) by this server are recorded" in again.stderr
        status = synckit.cli(phone, "status")
        assert status.returncode == 0, status.stderr
        assert ", 0 queued" in status.stdout and f"{len(acked)} acknowledged" in status.stdout
        assert "tampering findings: 1" in status.stdout, status.stdout
        # the checkpoints retired by the finding are not held against the repaired log
        fetched = _owner_fetch(phone, encounter, bundle)
        assert fetched.returncode == 0, fetched.stderr
        assert "rolled back" not in fetched.stderr and (bundle / "manifest.json").is_file()
        assert ("ROLLED BACK (settled 20" in status.stdout and encounter in status.stdout
                and f"verified a checkpoint of size {held}, the server now serves size "
                    f"{served}); {lost} acknowledged chunk(s) are no longer in it"
                in status.stdout), status.stdout
    finally:
        server.stop()


def _sizes(line: str) -> tuple[int, int, int]:
    """(held size, served size, acknowledged chunks lost) from a rollback finding's line."""
    held = int(line.split("checkpoint of size ")[1].split(",")[0])
    served = int(line.split("now serves size ")[1].split(")")[0])
    lost = int(line.split("); ")[1].split(" acknowledged")[0])
    return held, served, lost


# --- Attack: a forked log, re-signed with the server's real key ---------------------------------
# The operator reorders two leaves of the log (same size, another root) and signs a checkpoint
# for it with the server key it holds. The phone verified the true checkpoint of that size.


def test_resigned_same_size_fork_is_named_by_device_sync(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    phone = tmp_path / "phone"
    synckit.register(phone, server.url)
    encounter = _record(phone, tmp_path, chunks=3)
    total = len(synckit.outbox_chunks(phone))

    def swap(leaves: list[bytes]) -> list[bytes]:
        return [leaves[1], leaves[0], *leaves[2:]]

    rule = rewritten_log(read_key(server.data_dir / "server.key"), server.name, swap)
    moved, hostile = behind_hostile(server, [rule])
    try:
        done = synckit.cli(phone, "sync")
        assert done.returncode == 1, done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert encounter in line and "forked" in line, line
        assert "verified a checkpoint of size" in line and "now serves size" in line, line
        # re-anchored on the forged log, the real receipts contradict it: no chunk counts as
        # acknowledged against a log the server shows two ways, and every body stays here
        assert "acknowledged" not in synckit.states(phone), synckit.states(phone)
        assert len(synckit.outbox_chunks(phone)) == total
        status = synckit.cli(phone, "status")
        assert "FORKED (NOT settled)" in status.stdout, status.stdout
    finally:
        hostile.stop()
        moved.stop()


# --- Not an attack: the check never stands in the way of a recording ------------------------------


def test_recording_proceeds_when_the_check_cannot_reach_the_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    phone = tmp_path / "phone"
    synckit.register(phone, server.url)
    source = tmp_path / "audio.bin"
    source.write_bytes(os.urandom(2 * 4096))
    assert synckit.cli(phone, "record", str(source), "--chunk-bytes", "4096").returncode == 0
    server.stop()  # the phone has acknowledged chunks and checkpoints, and no network
    before = len(synckit.outbox_chunks(phone))
    done = synckit.cli(phone, "record", str(source), "--chunk-bytes", "4096")
    assert done.returncode == 3, done.stderr  # network: queued, safe in the outbox
    assert "still queued" in done.stderr, done.stderr
    assert len(synckit.outbox_chunks(phone)) > before


def _server_seqs(phone: Path, url: str, encounter: str, stream: str) -> set[int]:
    api = synckit.api_for(phone, url)
    page = api.receipts(encounter, stream, 0, 100)
    return {int(r["seq"]) for r in page["receipts"]}


def _acknowledged(phone: Path) -> int:
    try:
        return synckit.states(phone)["acknowledged"]
    except sqlite3.OperationalError:  # the outbox is made when the recording begins
        return 0


# --- Attack: restore a backup taken before the encounter began ------------------------------------
# The server then answers 404 for an encounter the phone holds receipts in (a deletion would
# answer 410 with its tombstone): the log shrank to nothing.


def test_backup_from_before_the_encounter_is_rollback_to_size_zero(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        phone = tmp_path / "phone"
        synckit.register(phone, server.url)
        backup = tmp_path / "backup.sqlite3"
        _online_backup(server.data_dir / "safehold.sqlite3", backup)
        encounter = _record(phone, tmp_path, chunks=2)
        total = len(synckit.outbox_chunks(phone))

        server = _restore(server, backup)
        rolled = synckit.cli(phone, "sync")
        assert rolled.returncode == 1, rolled.stderr
        line = rolled.stderr.strip().splitlines()[-1]
        assert (f"encounter {encounter}: the server's log was rolled back (this device verified"
                f" a checkpoint of size {total}, the server now serves size 0); {total} "
                f"acknowledged chunk(s) are no longer in it; this device sent them again and "
                f"all {total} are acknowledged in the server's log now") in line, line
        # the same sync created the encounter again and sent every chunk back
        assert synckit.audit(phone, server.url).missing == []
        again = synckit.cli(phone, "sync")
        assert again.returncode == 0, again.stderr
    finally:
        server.stop()


# --- Attack: a larger log that does not extend the one the phone verified -------------------------
# The operator rewrites the last leaf and appends one, re-signed with the server's key; the
# consistency proof it must give from the phone's size does not exist (refused or wrong).


def test_larger_log_without_consistency_is_named_a_fork(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    phone = tmp_path / "phone"
    synckit.register(phone, server.url)
    encounter = _record(phone, tmp_path, chunks=2)
    total = len(synckit.outbox_chunks(phone))

    def rewrite(leaves: list[bytes]) -> list[bytes]:
        return [*leaves[:-1], b"not what the phone sent", b"one more"]

    rule = rewritten_log(read_key(server.data_dir / "server.key"), server.name, rewrite)
    moved, hostile = behind_hostile(server, [rule])
    try:
        forked = synckit.cli(phone, "sync")
    finally:
        hostile.stop()
        moved.stop()
    assert forked.returncode == 1, forked.stderr
    assert (f"encounter {encounter}: the server's log was forked (this device verified a "
            f"checkpoint of size {total}, the server now serves size {total + 1})"
            ) in forked.stderr, forked.stderr


# --- Attack: a checkpoint signed with a key the phone never pinned --------------------------------


def test_checkpoint_under_another_key_is_refused(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    other = ServerProcess(tmp_path / "other").start()  # only for its (different) key
    other.stop()
    phone = tmp_path / "phone"
    synckit.register(phone, server.url)
    encounter = _record(phone, tmp_path, chunks=1)
    before = synckit.outbox_chunks(phone)

    rule = huge_checkpoint(read_key(other.data_dir / "server.key"), server.name, 5)
    moved, hostile = behind_hostile(server, [rule])
    try:
        refused = synckit.cli(phone, "sync")
    finally:
        hostile.stop()
        moved.stop()
    assert refused.returncode == 1, refused.stderr
    assert (f"encounter {encounter}: the server's current checkpoint does not verify"
            in refused.stderr), refused.stderr
    assert synckit.outbox_chunks(phone) == before  # nothing re-queued on a forged answer


# --- Not an attack: an honest server, nothing rolled back -----------------------------------------


def test_ordinary_sync_stays_quiet(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        phone = tmp_path / "phone"
        synckit.register(phone, server.url)
        for name in ("a.bin", "b.bin"):
            (tmp_path / name).write_bytes(os.urandom(2 * 4096))
            done = synckit.cli(phone, "record", str(tmp_path / name), "--chunk-bytes", "4096")
            assert done.returncode == 0, done.stderr
        before = synckit.outbox_chunks(phone)
        quiet = synckit.cli(phone, "sync")
        assert quiet.returncode == 0, quiet.stderr
        assert "tamper" not in quiet.stderr.lower() and "rolled back" not in quiet.stderr
        assert "forked" not in quiet.stderr, quiet.stderr
        assert synckit.outbox_chunks(phone) == before
    finally:
        server.stop()


# --- Not a rollback: another server (another key) at the phone's address -------------------------


def test_an_impostor_server_is_not_taken_for_a_rollback(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    phone = tmp_path / "phone"
    synckit.register(phone, server.url)
    source = tmp_path / "audio.bin"
    source.write_bytes(os.urandom(4096))
    assert synckit.cli(phone, "record", str(source), "--chunk-bytes", "4096").returncode == 0
    before = synckit.outbox_chunks(phone)
    server.stop()
    impostor = ServerProcess(tmp_path / "impostor", port=server.port).start()
    try:
        refused = synckit.cli(phone, "sync")
    finally:
        impostor.stop()
    assert refused.returncode == 3, refused.stderr  # it cannot even log the device in
    assert "rolled back" not in refused.stderr, refused.stderr
    assert synckit.outbox_chunks(phone) == before  # nothing queued again for a stranger
