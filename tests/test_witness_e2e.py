"""Witnesses end to end: `safehold serve` with two `safehold witness serve` processes on loopback,
the phone and a contact as CLI subprocesses, and `safehold verify` requiring k of n cosignatures.

- one witness honest, the other lying (answers with a key the server was not told about) or
  offline: 1 of 2 is met, 2 of 2 fails closed with exit 1 naming how many were found;
- a rollback by restoring a database backup: the witness will not cosign the shrunk log, so a
  contact who never saw the larger checkpoint still sees the requirement fail; a second witness
  that lies for the operator (cosigns the fork) meets 1 of 2 alone, and 2 of 2 fails closed;
- witnesses follow a recording nobody reads (the server asks them after each commit).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bundlekit import run_cli

from crypto.checkpoint import Checkpoint
from crypto.cosignature import cosign
from crypto.signing import split_note
from sync.api import ApiClient
from tests.helpers import ServerProcess, free_port
from tests.synckit import api_for, cli, outbox_chunks, wait_until
from tests.witnesskit import ColludingWitness, WitnessProcess, witness_keygen

CHUNK = 64 * 1024
FAST = {"SAFEHOLD_SYNC_PATIENCE": "5", "SAFEHOLD_HTTP_TIMEOUT": "10"}


def safehold(*args: str | Path) -> tuple[int, str, str]:
    done = run_cli(*args, env=FAST)
    return done.returncode, done.stdout, done.stderr


@dataclass
class Deployment:
    server: ServerProcess
    honest: WitnessProcess
    other: WitnessProcess
    honest_vkey: str
    other_vkey: str  # what the server and verifiers are told the second witness's key is


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Server configured with witnesses A and B; A runs honestly, B is not started yet."""
    a_state, b_state = tmp_path / "witness-a", tmp_path / "witness-b"
    a_vkey = witness_keygen(a_state, "witness.a.example/w1")
    b_vkey = witness_keygen(b_state, "witness.b.example/w1")
    a_port, b_port = free_port(), free_port()
    env = {"SAFEHOLD_WITNESSES": f"http://127.0.0.1:{a_port} {a_vkey}; "
                                 f"http://127.0.0.1:{b_port} {b_vkey}",
           "SAFEHOLD_WITNESS_TIMEOUT_SECONDS": "1", "SAFEHOLD_WITNESS_RETRY_SECONDS": "1"}
    server = ServerProcess(tmp_path / "server", env=env).start()
    key = server.server_key()
    honest = WitnessProcess(a_state, [key], port=a_port, name="witness.a.example/w1").start()
    other = WitnessProcess(b_state, [key], port=b_port, name="witness.b.example/w1")
    yield Deployment(server, honest, other, a_vkey, b_vkey)
    for process in (honest, other):
        process.kill()
    server.stop()


def record(state: Path, tmp_path: Path, size: int, *extra: str) -> str:
    source = tmp_path / f"media-{size}-{len(extra)}.bin"
    source.write_bytes(os.urandom(size))
    done = cli(state, "record", str(source), "--chunk-bytes", str(CHUNK), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[0]


def held_slots(api: ApiClient, encounter: str) -> list[tuple[str, int]]:
    streams = api.encounter(encounter)["streams"]
    return [(str(name), int(n)) for name, held in streams.items() for n in held["seqs"]]


def verify_with(bundle: Path, vkeys: list[str], *extra: str) -> tuple[int, str, str]:
    args: list[str | Path] = ["verify", bundle]
    for vkey in vkeys:
        args += ["--witness", vkey]
    return safehold(*args, *extra)


def test_one_of_two_with_a_lying_then_offline_witness_and_two_of_two_fails_closed(
        deployment: Deployment, tmp_path: Path) -> None:
    # B's process answers with a key of its own, not the one the operator configured
    impostor_state = tmp_path / "impostor"
    witness_keygen(impostor_state, "witness.b.example/w1")
    lying = WitnessProcess(impostor_state, deployment.honest.log_keys,
                           port=deployment.other.port, name="witness.b.example/w1").start()
    phone = tmp_path / "phone"
    assert safehold("device", "register", "--server", deployment.server.url,
                    "--state", phone)[0] == 0
    encounter = record(phone, tmp_path, 3 * CHUNK + 5)
    bundle = tmp_path / "bundle"
    code, out, err = safehold("fetch", encounter, "-o", bundle, "--state", phone)
    assert code == 0, out + err
    keys = [deployment.honest_vkey, deployment.other_vkey]

    code, out, err = verify_with(bundle, keys, "--witnesses-required", "1")
    assert code == 0, out + err
    assert ("witnesses: 1 valid witness cosignature(s) of the 1 required from 2 known "
            "witness(es) (by witness.a.example/w1)") in out
    code, out, err = verify_with(bundle, keys)  # default: all of them
    assert code == 1
    assert "witness requirement not met: 1 valid witness cosignature(s) of the 2 required" in err
    assert "OK" in out  # the bundle itself is intact; only the witness requirement failed

    # the receipt of the last chunk carries the cosignature too, once collected
    api = api_for(phone, deployment.server.url)
    latest = api.latest_checkpoint(encounter)["tree_size"]
    held = [r for r in (api.chunk_receipt(encounter, s, n) for s, n in held_slots(api, encounter))
            if r["tree_size"] == latest]
    assert len(held) == 1
    receipt = held[0]
    assert "\u2014 witness.a.example/w1 " in receipt["checkpoint"]
    assert "witness.b.example" not in receipt["checkpoint"]

    # B goes offline: the server still answers (bounded by the 1 s timeout), A still cosigns
    lying.kill()
    second = record(phone, tmp_path, 2 * CHUNK + 1)
    bundle2 = tmp_path / "bundle2"
    assert safehold("fetch", second, "-o", bundle2, "--state", phone)[0] == 0
    assert verify_with(bundle2, keys, "--witnesses-required", "1")[0] == 0
    code, _, err = verify_with(bundle2, keys, "--witnesses-required", "2")
    assert code == 1 and "1 valid witness cosignature(s) of the 2 required" in err

    # a forged line claiming B (B's real key, over another checkpoint) is named, not counted
    note_path = bundle2 / "log" / "checkpoint.note"
    note = note_path.read_text()
    cp = Checkpoint.parse(split_note(note)[0])
    other = Checkpoint(cp.origin, cp.size + 1, cp.root)
    b_key = (tmp_path / "witness-b" / "witness.key").read_text().strip()
    note_path.write_text(note + cosign(other.text(), b_key, 1700000000))
    code, out, err = verify_with(bundle2, keys, "--witnesses-required", "2")
    assert code == 1 and "cosignature by witness.b.example/w1 does not verify" in err


def test_usage_errors_name_the_option(deployment: Deployment, tmp_path: Path) -> None:
    bundle = tmp_path / "nothing"
    bundle.mkdir()
    code, _, err = verify_with(bundle, [deployment.honest_vkey], "--witnesses-required", "2")
    assert code == 2 and "between 1 and 1" in err
    code, _, err = verify_with(bundle, [deployment.server.server_key()])
    assert code == 2 and "0x04" in err
    code, _, err = safehold("verify", bundle, "--witnesses-required", "1")
    assert code == 2 and "--witness VKEY" in err


def backup(database: Path, to: Path) -> None:
    with sqlite3.connect(database) as source, sqlite3.connect(to) as target:
        source.backup(target)


def join(phone: Path, contact: Path, name: str, url: str, tmp_path: Path) -> None:
    code, invitation, err = safehold("device", "invite", "--long", "--name", name, "--policy",
                                     "immediate", "--state", phone)
    assert code == 0, err
    assert safehold("keygen", "-o", tmp_path / f"{name}.key")[0] == 0
    code, out, err = safehold("contact", "join", invitation.strip(), "--server", url,
                              "--identity", tmp_path / f"{name}.key", "--state", contact)
    assert code == 0, out + err


@pytest.mark.sqlite_only("restores a copy of the SQLite file as a backup")
def test_rollback_by_restored_backup_is_refused_by_the_witness(
        deployment: Deployment, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Contact reads are logged, so the log grows; a restored backup forgets Mom's first reads,
    her next reads grow the old log into a fork, and Dad (who never saw the larger checkpoint)
    gets a checkpoint the honest witness did not cosign. Witness B lies for the operator (it
    cosigns anything with its real key): one of two is then met by the liar alone, and two of
    two fails closed."""
    colluding = ColludingWitness(tmp_path / "witness-b" / "witness.key", deployment.other.port)
    request.addfinalizer(colluding.stop)
    phone, mom, dad = tmp_path / "phone", tmp_path / "mom", tmp_path / "dad"
    url = deployment.server.url
    assert safehold("device", "register", "--server", url, "--state", phone)[0] == 0
    join(phone, mom, "Mom", url, tmp_path)
    join(phone, dad, "Dad", url, tmp_path)
    assert safehold("device", "contacts", "--state", phone)[0] == 0
    encounter = record(phone, tmp_path, 2 * CHUNK + 1)
    api = api_for(phone, url)
    small = api.latest_checkpoint(encounter)  # witness A cosigns this size
    assert "\u2014 witness.a.example/w1 " in small["checkpoint"]
    database = deployment.server.data_dir / "safehold.sqlite3"
    backup(database, tmp_path / "backup.sqlite3")

    assert safehold("fetch", encounter, "-o", tmp_path / "mom-1", "--state", mom)[0] == 0
    large = api.latest_checkpoint(encounter)  # Mom's reads are leaves of the log
    assert large["tree_size"] > small["tree_size"]
    assert "\u2014 witness.a.example/w1 " in large["checkpoint"]

    # the operator restores the backup taken before Mom's reads; the log goes on from there
    deployment.server.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup.sqlite3", database)
    restarted = ServerProcess(deployment.server.data_dir, env=deployment.server.extra_env,
                              port=deployment.server.port).start()
    deployment.server = restarted
    # Mom kept the checkpoint she fetched: her own fetch names the restored log a fork
    code, out, err = safehold("fetch", encounter, "-o", tmp_path / "mom-2", "--state", mom)
    assert code == 1 and "EVIDENCE TAMPERING" in err and "forked" in err, out + err

    bundle = tmp_path / "dad-bundle"
    code, out, err = safehold("fetch", encounter, "-o", bundle, "--state", dad)
    assert code == 0, out + err
    # Dad never saw the larger checkpoint: without witnesses his bundle looks fine...
    assert safehold("verify", bundle)[0] == 0
    # ...but witness A refused to cosign a log that forgot what it had cosigned
    code, out, err = verify_with(bundle, [deployment.honest_vkey])
    assert code == 1
    assert ("witness requirement not met: 0 valid witness cosignature(s) of the 1 required "
            "from 1 known witness(es)") in err
    with sqlite3.connect(deployment.honest.state / "witness.sqlite3") as db:
        sizes = [int(r[0]) for r in db.execute("SELECT size FROM latest")]
    assert sizes == [large["tree_size"]]
    assert "did not cosign" in restarted.output()
    # the lying witness cosigned the forked log: k-of-n holds only while at most k-1 lie
    keys = [deployment.honest_vkey, deployment.other_vkey]
    code, out, _ = verify_with(bundle, keys, "--witnesses-required", "1")
    assert code == 0 and "(by witness.b.example/w1)" in out, out
    code, out, err = verify_with(bundle, keys, "--witnesses-required", "2")
    assert code == 1, out + err
    assert ("witness requirement not met: 1 valid witness cosignature(s) of the 2 required "
            "from 2 known witness(es) (by witness.b.example/w1)") in err


def test_device_requirement_fails_record_closed_and_is_met_by_one_of_two(
        deployment: Deployment, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    assert safehold("device", "register", "--server", deployment.server.url,
                    "--state", phone)[0] == 0
    keys = ["--witness", deployment.honest_vkey, "--witness", deployment.other_vkey]
    code, out, _ = safehold("device", "witnesses", *keys, "--state", phone)  # all: 2 of 2
    assert code == 0 and "require 2 of 2 witness(es)" in out
    source = tmp_path / "clip.bin"
    source.write_bytes(os.urandom(2 * CHUNK))
    done = cli(phone, "record", str(source), "--chunk-bytes", str(CHUNK))  # B is offline
    encounter = done.stdout.strip().splitlines()[0]
    assert done.returncode == 1
    assert (f"encounter {encounter}: witness requirement not met: 1 valid witness "
            "cosignature(s) of the 2 required") in done.stderr
    assert cli(phone, "sync").returncode == 0  # the chunks themselves were all uploaded

    code, _, err = safehold("device", "witnesses", *keys, "--required", "3", "--state", phone)
    assert code == 2 and "between 1 and 2" in err
    assert safehold("device", "witnesses", *keys, "--required", "1", "--state", phone)[0] == 0
    again = cli(phone, "record", str(source), "--chunk-bytes", str(CHUNK))
    assert again.returncode == 0, again.stderr
    code, out, _ = safehold("device", "witnesses", "--clear", "--state", phone)
    assert code == 0 and "no witness requirement" in out


@pytest.mark.sqlite_only("edits rows of the server's SQLite file as a hostile operator would")
def test_witnesses_cosign_as_chunks_are_committed_without_any_reader(
        deployment: Deployment, tmp_path: Path) -> None:
    """Nobody reads the checkpoint (no device requirement, no fetch): the server asks the
    witnesses in the background after each commit, so witness A holds the whole recording's
    log and a later restore of a backup would be evident to it."""
    phone = tmp_path / "phone"
    assert safehold("device", "register", "--server", deployment.server.url,
                    "--state", phone)[0] == 0
    encounter = record(phone, tmp_path, 3 * CHUNK + 5)
    size = len(outbox_chunks(phone))  # every chunk is one leaf of the encounter's log

    def cosigned() -> int:
        with sqlite3.connect(deployment.honest.state / "witness.sqlite3") as db:
            rows = db.execute("SELECT size FROM latest WHERE origin LIKE ?",
                              [f"%/{encounter}"]).fetchall()
        db.close()
        return int(rows[0][0]) if rows else 0

    wait_until(lambda: cosigned() == size, 20, f"witness A cosigning size {size}")
    requests = deployment.server.output()  # the server's access log: chunks in, no reader
    assert f"{encounter}/streams/audio/chunks/0" in requests
    assert f"{encounter}/log/checkpoint" not in requests
