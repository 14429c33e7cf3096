"""`safehold witness serve` over HTTP: it cosigns only checkpoints consistent with what it
cosigned before, answers as c2sp.org/tlog-witness says, and its state survives kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crypto.cosignature import add_signature_lines, verify_cosignatures
from crypto.signing import generate_signing_key
from tests.helpers import PYTHON, ROOT
from tests.witnesskit import ToyLog, WitnessProcess, witness_cli, witness_keygen


@pytest.fixture
def toy() -> ToyLog:
    log = ToyLog()
    log.append(b"a", b"b", b"c")
    return log


@pytest.fixture
def witness(tmp_path: Path, toy: ToyLog) -> Iterator[WitnessProcess]:
    process = WitnessProcess(tmp_path / "w", [toy.vkey], name="witness.test/w1").start()
    yield process
    process.kill()


def stored(state: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(state / "witness.sqlite3") as db:
        return [(str(o), int(s)) for o, s in db.execute("SELECT origin, size FROM latest")]


def refused(state: Path) -> list[str]:
    with sqlite3.connect(state / "witness.sqlite3") as db:
        return [str(r[0]) for r in db.execute("SELECT reason FROM refused ORDER BY id")]


def test_keygen_prints_a_stable_cosignature_vkey(tmp_path: Path) -> None:
    vkey = witness_keygen(tmp_path / "k", "witness.test/w9")
    assert vkey.startswith("witness.test/w9+") and witness_keygen(tmp_path / "k",
                                                                  "witness.test/w9") == vkey
    other = witness_cli("keygen", "--state", str(tmp_path / "k"), "--name", "someone-else")
    assert other.returncode == 2 and "witness.test/w9" in other.stderr
    bad = witness_cli("keygen", "--state", str(tmp_path / "j"), "--name", "has space")
    assert bad.returncode == 2 and "invalid witness name" in bad.stderr


def test_cosigns_a_consistent_checkpoint_and_says_its_size_on_conflict(
        witness: WitnessProcess, toy: ToyLog) -> None:
    first = witness.add(toy.body(0))
    assert first.status_code == 200, first.text
    valid, problems = verify_cosignatures(add_signature_lines(toy.note(), [first.text]),
                                          [witness.vkey])
    assert [c.cosigner.name for c in valid] == ["witness.test/w1"] and problems == []
    toy.append(b"d", b"e")
    stale = witness.add(toy.body(0))  # the log forgot what the witness holds
    assert stale.status_code == 409 and stale.text == "3\n"
    assert stale.headers["Content-Type"].startswith("text/x.tlog.size")
    grown = witness.add(toy.body(3))
    assert grown.status_code == 200
    assert stored(witness.state) == [(toy.origin, 5)]


def test_refuses_fork_rollback_and_bad_proofs_and_keeps_its_state(
        witness: WitnessProcess, toy: ToyLog) -> None:
    toy.append(b"d", b"e")
    assert witness.add(toy.body(0)).status_code == 200  # holds size 5
    # a restored backup: the same log at size 3 (old 0 or old 5 -> both refused)
    rolled_back = witness.add(toy.body(0, size=3))
    assert rolled_back.status_code == 409 and rolled_back.text == "5\n"
    shrink = witness.add(toy.body(0, size=3).replace(b"old 0\n", b"old 5\n", 1))
    assert shrink.status_code == 400 and "above the checkpoint size" in shrink.text
    # a fork: other leaves after the first three, grown past what the witness holds
    fork = ToyLog(signing_key=toy.signing_key, leaves=[b"a", b"b", b"c", b"X", b"Y", b"Z"])
    forked = witness.add(fork.body(5))
    assert forked.status_code == 422 and "not consistent" in forked.text
    same_size = witness.add(fork.body(5, size=5).replace(b"old 0\n", b"old 5\n", 1))
    assert same_size.status_code == 409 and "fork" in same_size.text
    assert stored(witness.state) == [(toy.origin, 5)]
    assert len(refused(witness.state)) == 2  # evidence of the fork is kept


def test_unknown_log_forged_signature_and_malformed_body(
        witness: WitnessProcess, toy: ToyLog) -> None:
    stranger = ToyLog(name="elsewhere.example")
    stranger.append(b"x")
    assert witness.add(stranger.body(0)).status_code == 404
    impostor = ToyLog(name=toy.name, signing_key=generate_signing_key(toy.name))
    impostor.append(b"x")
    answer = witness.add(impostor.body(0))
    assert answer.status_code == 403 and "no valid signature" in answer.text
    for body in (b"", b"old x\n\n" + toy.note().encode(), b"old 0\n\nnot a checkpoint\n"):
        answer = witness.add(body)
        assert answer.status_code == 400 and "malformed" in answer.text
    assert witness.add(b"old 0\n" + b"A" * 70000).status_code == 413
    assert stored(witness.state) == []


def test_state_survives_kill_9_right_after_cosigning(
        tmp_path: Path, witness: WitnessProcess, toy: ToyLog) -> None:
    toy.append(b"d")
    assert witness.add(toy.body(0)).status_code == 200
    witness.kill(signal.SIGKILL)
    again = WitnessProcess(witness.state, [toy.vkey], name="witness.test/w1").start()
    try:
        answer = again.add(toy.body(0, size=3))  # a rollback after the crash
        assert answer.status_code == 409 and answer.text == "4\n"
        assert again.vkey == witness_keygen(witness.state, "witness.test/w1")
    finally:
        again.kill()


def test_concurrent_submissions_cosign_one_size_at_a_time(
        witness: WitnessProcess, toy: ToyLog) -> None:
    """Check-and-store is atomic: of many racing first submissions exactly one is cosigned and
    the others are told the size it stored (the race c2sp.org/tlog-witness warns about)."""
    toy.append(*[bytes([i]) for i in range(9)])
    bodies = [toy.body(0, size=n) for n in range(4, 12)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(witness.add, bodies))
    winners = [n for n, a in zip(range(4, 12), answers, strict=True) if a.status_code == 200]
    assert len(winners) == 1
    assert all(a.status_code == 409 and a.text == f"{winners[0]}\n"
               for a in answers if a.status_code != 200)
    assert stored(witness.state) == [(toy.origin, winners[0])]


@pytest.mark.parametrize("value, message", [
    ("http://127.0.0.1:1", "entries are '<http(s) url> <witness vkey>'"),
    ("ftp://w.example w+00000000+BAAA", "entries are '<http(s) url> <witness vkey>'"),
    ("http://w.example w1+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
     "is not a witness key"),
])
def test_server_refuses_a_malformed_witness_setting(tmp_path: Path, value: str,
                                                    message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update({"SAFEHOLD_DATA_DIR": str(tmp_path / "d"), "SAFEHOLD_WITNESSES": value})
    done = subprocess.run([PYTHON, "-m", "cli.main", "migrate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "SAFEHOLD_WITNESSES" in done.stderr
    assert message in done.stderr and not (tmp_path / "d").exists()
