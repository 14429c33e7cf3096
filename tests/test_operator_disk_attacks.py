"""A hostile operator with the server's database file and disk, against the owner (issue 10).

One recording is made per module (two encounters of a phone, through the real CLI and a real
`safehold serve`); each attack then works on its own copy of the server's data folder and of
the phone's state folder, and a server is started on that copy at the address the phone
registered. The operator edits the SQLite file with SQL or the blob files on disk, or serves a
log re-signed with the server's own key; the owner's `device sync` and the owner's `fetch`,
`verify` and `decrypt` must each end in a non-zero exit that names what happened, and decrypt
must write nothing.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bundlekit import run_cli

from tests import synckit
from tests.helpers import ServerProcess
from tests.hostilekit import behind_hostile, read_key, rewritten_log

pytestmark = pytest.mark.sqlite_only("edits the server's SQLite file as an operator would")


FAST = {"SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}
CHUNKS = 3


@dataclass(frozen=True)
class Recorded:
    data: Path  # the server's data folder, server stopped
    phone: Path
    port: int
    encounter: str  # attacked
    other: str  # another encounter of the same phone


@dataclass(frozen=True)
class Copy:
    data: Path
    phone: Path
    port: int
    encounter: str
    other: str

    @property
    def database(self) -> Path:
        return self.data / "safehold.sqlite3"

    def blob(self, encounter: str, stream: str, seq: int) -> Path:
        return self.data / "blobs" / "encounters" / encounter / stream / f"{seq:08d}.age"

    def sql(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.database) as db:
            rows = db.execute(statement, params).fetchall()
        db.close()
        return rows

    def server(self) -> ServerProcess:
        return ServerProcess(self.data, port=self.port)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp("recorded")
    server = ServerProcess(root / "data").start()
    try:
        phone = root / "phone"
        synckit.register(phone, server.url)
        encounters = []
        for n in range(2):
            source = root / f"audio-{n}.bin"
            source.write_bytes(os.urandom(CHUNKS * 4096))
            done = synckit.cli(phone, "record", str(source), "--chunk-bytes", "4096")
            assert done.returncode == 0, done.stderr
            encounters.append(done.stdout.split()[0])
    finally:
        server.stop()
    yield Recorded(root / "data", phone, server.port, encounters[0], encounters[1])


@pytest.fixture
def copy(recorded: Recorded, tmp_path: Path) -> Copy:
    shutil.copytree(recorded.data, tmp_path / "data")
    shutil.copytree(recorded.phone, tmp_path / "phone")
    return Copy(tmp_path / "data", tmp_path / "phone", recorded.port, recorded.encounter,
                recorded.other)


def owner_reads(copy: Copy, tmp_path: Path) -> tuple[int, str]:
    """The owner's fetch, then verify and decrypt of whatever it left; fetch's (exit, words).
    Decrypt must never write a folder for an attacked encounter."""
    bundle, out = tmp_path / "bundle", tmp_path / "decrypted"
    fetched = run_cli("fetch", copy.encounter, "-o", bundle, "--state", copy.phone, env=FAST)
    for args in (("verify", bundle), ("decrypt", bundle, "-i", copy.phone / "recovery.key",
                                      "-o", out)):
        done = run_cli(*args, env=FAST)
        assert done.returncode != 0, done.stdout + done.stderr
        assert "OK: nothing was altered" not in done.stdout
    assert not out.exists() and not list(tmp_path.glob(".decrypted.partial-*"))
    return fetched.returncode, fetched.stdout + fetched.stderr


def attacked(copy: Copy, attack: Callable[[Copy], None]) -> ServerProcess:
    attack(copy)
    return copy.server().start()


# --- Attack: a chunk's row deleted with SQL (its leaf kept, or deleted too) -----------------------


def victim(copy: Copy) -> tuple[int, int]:
    """(seq, leaf index) of the audio chunk lowest in the log (never its last leaf)."""
    rows = copy.sql("SELECT seq, leaf_index FROM chunks WHERE encounter_id = ? AND"
                    " stream = 'audio' ORDER BY leaf_index LIMIT 1", copy.encounter)
    return int(str(rows[0][0])), int(str(rows[0][1]))


def drop_row(copy: Copy) -> None:
    copy.sql("DELETE FROM chunks WHERE encounter_id = ? AND stream = 'audio' AND seq = ?",
             copy.encounter, victim(copy)[0])


def drop_row_and_leaf(copy: Copy) -> None:
    _seq, leaf = victim(copy)
    drop_row(copy)
    copy.sql("DELETE FROM log_leaves WHERE encounter_id = ? AND leaf_index = ?",
             copy.encounter, leaf)


@pytest.mark.parametrize("attack", [drop_row, drop_row_and_leaf], ids=["row", "row+leaf"])
def test_dropped_chunks_are_named_to_the_owner_sent_again_and_settle(
        copy: Copy, tmp_path: Path, attack: Callable[[Copy], None]) -> None:
    seq, leaf = victim(copy)
    server = attacked(copy, attack)
    try:
        code, words = owner_reads(copy, tmp_path)
        assert code == 1, words
        if attack is drop_row:
            assert (f"the server's signed log lists audio seq {seq} (leaf {leaf}), but the "
                    "server says it holds no such chunk: acknowledged evidence was dropped"
                    ) in words, words
        else:  # the log the server serves has a hole where the leaf was: named at that index
            assert (f"the server sent leaf {leaf} of {copy.encounter} out of order or "
                    "malformed") in words, words

        # the next command of the phone finds it: a `sync`, or a new recording (which is
        # recorded and sent all the same)
        if attack is drop_row:
            (tmp_path / "more.bin").write_bytes(os.urandom(4096))
            found = synckit.cli(copy.phone, "record", str(tmp_path / "more.bin"),
                                "--chunk-bytes", "4096")
            assert "recorded 1 audio chunk(s)" in found.stderr, found.stderr
        else:
            found = synckit.cli(copy.phone, "sync")
        total = len(synckit.outbox_chunks(copy.phone))
        assert found.returncode == 1, found.stderr
        line = found.stderr.strip().splitlines()[-1]
        assert (f"EVIDENCE TAMPERING: encounter {copy.encounter}: the server no longer holds 1 "
                "acknowledged chunk(s) that its signed log (size ") in line, line
        assert (f"still lists (first: audio/{seq}); this device sent them again and all 1 are "
                "acknowledged in the server's log now") in line, line
        assert synckit.states(copy.phone) == {"acknowledged": total}
        assert synckit.audit(copy.phone, server.url).missing == []
        settled = synckit.cli(copy.phone, "sync")
        assert settled.returncode == 0, settled.stderr
        status = synckit.cli(copy.phone, "status")
        assert "DROPPED (settled " in status.stdout and copy.encounter in status.stdout
    finally:
        server.stop()


# --- Attack: blob files swapped or replaced on disk ------------------------------------------


def swap_blobs(copy: Copy) -> None:
    first, second = copy.blob(copy.encounter, "audio", 0), copy.blob(copy.encounter, "audio", 1)
    body = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(body)


def blob_of_another_encounter(copy: Copy) -> None:
    copy.blob(copy.encounter, "audio", 1).write_bytes(
        copy.blob(copy.other, "audio", 1).read_bytes())


@pytest.mark.parametrize(("attack", "seq"), [(swap_blobs, 0), (blob_of_another_encounter, 1)],
                         ids=["swapped", "other-encounter"])
def test_altered_blobs_are_named_by_the_owners_fetch(copy: Copy, tmp_path: Path,
                                                     attack: Callable[[Copy], None],
                                                     seq: int) -> None:
    server = attacked(copy, attack)
    try:
        code, words = owner_reads(copy, tmp_path)
        # the phone never downloads what it sent: a blob swap is not its to see (it is
        # the verifier's), and its sync stays quiet rather than guessing
        quiet = synckit.cli(copy.phone, "sync")
    finally:
        server.stop()
    assert code == 1, words
    assert (f"audio seq {seq} as served does not match the SHA-256 in its signed "
            "descriptor") in words, words
    assert quiet.returncode == 0, quiet.stderr


# --- Attack: a forked log (same size, another root), re-signed with the server's key ---------


def test_a_forked_log_is_named_by_the_owners_sync_fetch_and_verify(copy: Copy,
                                                                   tmp_path: Path) -> None:
    server = copy.server()  # not started: behind_hostile starts it on another port

    def swap(leaves: list[bytes]) -> list[bytes]:
        return [leaves[1], leaves[0], *leaves[2:]]

    rule = rewritten_log(read_key(copy.data / "server.key"), server.name, swap)
    moved, hostile = behind_hostile(server, [rule])
    try:
        code, words = owner_reads(copy, tmp_path)
        synced = synckit.cli(copy.phone, "sync")
    finally:
        hostile.stop()
        moved.stop()
    # the phone verified a checkpoint of that size with another root: the owner's fetch names
    # the fork before writing anything (without it, the receipts would disagree with the log)
    assert code == 1, words
    assert (f"encounter {copy.encounter}: the server's log was forked (you hold its signed "
            "checkpoint of size") in words, words
    # the phone verified checkpoints of both encounters at these sizes, with other roots: the
    # rule rewrote both logs, and both are findings (the line names the first, counts the rest)
    assert synced.returncode == 1, synced.stderr
    assert "the server's log was forked (this device verified a checkpoint of size" \
        in synced.stderr and "(and 1 more finding(s))" in synced.stderr, synced.stderr
    status = synckit.cli(copy.phone, "status").stdout
    assert status.count("FORKED (NOT settled)") == 2, status
    assert copy.encounter in status and copy.other in status, status
