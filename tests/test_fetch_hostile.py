"""`safehold fetch` against a hostile server (issue 10, "bounded"): a real server behind one that
lies as an operator can (tests/hostilekit.py). Each attack ends in exit 1 with one line naming
it, never writes more than a chunk's signed size, and the fetch stays under a fixed memory
bound (its peak RSS, measured).

Exit codes: 1 for anything the server sent that fails fetch's checks (a signature, a digest, a
bound); 3 only when it could not be reached or refused (docs/protocol.md, fetch).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fetchkit import record, run_measured, safehold
from helpers import ServerProcess
from hostilekit import (
    HostileServer,
    Rule,
    advertised_chunk_limit,
    behind_hostile,
    endless_bodies,
    endless_leaves,
    huge_checkpoint,
    read_key,
    refuse_encounter,
    rewritten_log,
    too_many_requests,
)

from crypto.descriptor import TYPE_TAG as CHUNK_TAG
from crypto.descriptor import ChunkDescriptor, sign_descriptor
from crypto.signing import generate_signing_key, split_note

CHUNK = 64 * 1024
RSS_BOUND = 200 * 1024 * 1024


@dataclass
class Recorded:
    server: ServerProcess
    phone: Path
    encounter: str
    bundle: Path


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Recorded]:
    """A phone's recording of 4 audio chunks (and its event log) on a real server."""
    server = ServerProcess(tmp_path / "data").start()
    try:
        phone = tmp_path / "phone"
        done = safehold("device", "register", "--server", server.url, "--state", phone)
        assert done.returncode == 0, done.stderr
        encounter = record(phone, tmp_path, os.urandom(4 * CHUNK), CHUNK)
        yield Recorded(server, phone, encounter, tmp_path / "bundle")
    finally:
        server.stop()


@pytest.fixture
def hostile(recorded: Recorded) -> Iterator[Callable[[list[Rule]], HostileServer]]:
    started: list[tuple[ServerProcess, HostileServer]] = []

    def start(rules: list[Rule]) -> HostileServer:
        started.append(behind_hostile(recorded.server, rules))
        return started[-1][1]

    yield start
    for moved, proxy in started:
        proxy.stop()
        moved.stop()


def fetch(rec: Recorded) -> tuple[int, list[str], int]:
    done, peak = run_measured("fetch", rec.encounter, "-o", rec.bundle, "--state", rec.phone)
    return done.returncode, done.stderr.strip().splitlines(), peak


def descriptors(bundle: Path) -> dict[Path, ChunkDescriptor]:
    """Each chunk's age file path -> the descriptor fetch saved beside it."""
    found = {}
    for path in bundle.glob("chunks/*/*.descriptor"):
        text, _sigs = split_note(path.read_text())
        found[path.with_suffix(".age")] = ChunkDescriptor.parse(text)
    return found


def test_an_endless_body_is_cut_off_at_the_signed_sizes(recorded: Recorded, hostile) -> None:
    proxy = hostile([endless_bodies(true_first=True)])
    code, stderr, peak = fetch(recorded)
    assert code == 1, stderr
    assert len(stderr) == 1, stderr
    assert "the server sent more than the" in stderr[0] and "cut off there" in stderr[0]
    assert "/pack" in stderr[0]
    described = descriptors(recorded.bundle)
    assert described, "descriptors are saved before any body"
    for age_file, desc in described.items():
        part = age_file.with_name(age_file.name + ".part")
        assert not part.exists() or part.stat().st_size <= desc.size
        assert not age_file.exists() or age_file.stat().st_size == desc.size
    on_disk = sum(f.stat().st_size for f in recorded.bundle.glob("chunks/*/*.age*"))
    assert on_disk <= sum(d.size for d in described.values())
    assert not (recorded.bundle / "manifest.json").exists()
    assert peak < RSS_BOUND
    assert proxy.endless_sent > 0


def test_an_endless_body_of_junk_is_refused_at_the_first_chunk(recorded: Recorded,
                                                               hostile) -> None:
    hostile([endless_bodies(true_first=False)])
    code, stderr, peak = fetch(recorded)
    assert code == 1, stderr
    assert len(stderr) == 1 and "does not match the SHA-256 in its signed descriptor" \
        in stderr[0], stderr
    assert not list(recorded.bundle.glob("chunks/*/*.age"))  # nothing wrong kept
    described = descriptors(recorded.bundle)
    for age_file, desc in described.items():
        part = age_file.with_name(age_file.name + ".part")
        assert not part.exists() or part.stat().st_size <= desc.size
    assert peak < RSS_BOUND


def test_a_checkpoint_claiming_a_trillion_leaves_is_refused_before_any_leaf(
        recorded: Recorded, hostile) -> None:
    key = read_key(recorded.server.data_dir / "server.key")
    proxy = hostile([huge_checkpoint(key, recorded.server.name, 10**12)])
    code, stderr, peak = fetch(recorded)
    assert code == 1, stderr
    assert stderr == [f"safehold: the server's checkpoint for {recorded.encounter} claims "
                      "1000000000000 log leaves; a fetch handles at most 1048576 (a broken or "
                      "hostile server?); nothing was downloaded"]
    assert not any("/log/leaves" in seen for seen in proxy.seen)
    assert not list(recorded.bundle.glob("chunks/**/*"))
    assert peak < RSS_BOUND


def test_an_endless_page_of_leaves_is_cut_off(recorded: Recorded, hostile) -> None:
    hostile([endless_leaves])
    code, stderr, peak = fetch(recorded)
    assert code == 1, stderr
    assert len(stderr) == 1, stderr
    assert "/log/leaves: the server sent more than the 33554432 bytes expected; cut off there" \
        in stderr[0]
    assert peak < RSS_BOUND


def forge(device_key: str, stranger_key: str) -> Callable[[list[bytes]], list[bytes]]:
    """audio seq 1: signed by the phone's own key but claiming 2^40 bytes; audio seq 2: signed
    by a key the phone never had (a device the operator slipped into the account)."""

    def rewrite(leaves: list[bytes]) -> list[bytes]:
        out = []
        for leaf in leaves:
            text, _sigs = split_note(leaf.decode())
            if text.startswith(CHUNK_TAG + "\n"):
                desc = ChunkDescriptor.parse(text)
                if (desc.stream, desc.seq) == ("audio", 1):
                    leaf = sign_descriptor(dataclasses.replace(desc, size=2**40),
                                           device_key).encode()
                elif (desc.stream, desc.seq) == ("audio", 2):
                    leaf = sign_descriptor(desc, stranger_key).encode()
            out.append(leaf)
        return out

    return rewrite


@pytest.mark.parametrize("advertised", [None, 2**50])
def test_descriptors_are_checked_before_any_body_is_asked_for(
        recorded: Recorded, hostile, advertised: int | None) -> None:
    server = recorded.server
    rules = [rewritten_log(read_key(server.data_dir / "server.key"), server.name,
                           forge(read_key(recorded.phone / "device.key"),
                                 generate_signing_key("device-stranger")))]
    if advertised is not None:  # a server that claims to take any size: the client's cap holds
        rules.insert(0, advertised_chunk_limit(advertised))
    proxy = hostile(rules)
    # the rewritten log is a fork to the phone, which verified its checkpoints and would say so
    # first; the descriptor checks guard whoever holds none (a contact, another device)
    with sqlite3.connect(recorded.phone / "outbox.db") as outbox:
        outbox.execute("DELETE FROM checkpoints")
    code, stderr, peak = fetch(recorded)
    assert code == 1, stderr
    limit = 4 * 1024 * 1024 if advertised is None else 64 * 1024 * 1024
    assert any(line.startswith("safehold: refused: audio seq 1 (log leaf ")
               and line.endswith(f"its descriptor claims 1099511627776 bytes, more than the "
                                 f"server's chunk limit of {limit}; not downloaded")
               for line in stderr), stderr
    assert any("no device of the account's roster" in line
               for line in stderr), stderr
    audio = recorded.bundle / "chunks" / "audio"
    assert sorted(p.name for p in audio.glob("*.age*")) == ["00000000.age", "00000003.age"]
    for age_file, desc in descriptors(recorded.bundle).items():
        if age_file.exists():
            assert age_file.stat().st_size == desc.size
    assert not (asked_for_audio(proxy) & {1, 2}), proxy.seen  # not one byte asked for
    assert asked_for_audio(proxy) == {0, 3}
    assert peak < RSS_BOUND


def asked_for_audio(proxy: HostileServer) -> set[int]:
    """The audio seqs whose bytes the fetch asked for (by pack or alone)."""
    seqs: set[int] = set()
    for seen in proxy.seen:
        path, _, query = seen.split(" ", 1)[1].partition("?")
        if path.endswith("/streams/audio/pack"):
            bounds = dict(item.split("=") for item in query.split("&"))
            seqs |= set(range(int(bounds["start"]), int(bounds["end"])))
        elif "/streams/audio/chunks/" in path and not path.endswith("/receipt"):
            seqs.add(int(path.rsplit("/", 1)[1]))
    return seqs


def test_a_refusals_words_cannot_steer_the_terminal(recorded: Recorded, hostile) -> None:
    fake = "no.\n\x1b[32mResult     OK: nothing was altered\x1b[0m\n" + "x" * 5000
    hostile([refuse_encounter(fake)])
    code, stderr, _peak = fetch(recorded)
    assert code == 3, stderr  # a refusal, not a verification failure
    assert len(stderr) == 1, stderr
    assert "\x1b" not in stderr[0]
    assert stderr[0].startswith("safehold: server refused (403 forbidden\\x1b[2J): no.\\x0a"
                                "\\x1b[32mResult     OK: nothing was altered")
    assert len(stderr[0]) < 700


def test_a_resumed_chunk_is_cut_off_at_its_signed_size(recorded: Recorded, hostile) -> None:
    first, _peak = run_measured("fetch", recorded.encounter, "-o", recorded.bundle, "--state",
                                recorded.phone)
    assert first.returncode == 0, first.stderr  # an honest server, first
    age_file = recorded.bundle / "chunks" / "audio" / "00000002.age"
    part = age_file.with_name(age_file.name + ".part")
    part.write_bytes(age_file.read_bytes()[:1000])  # as an interrupted fetch leaves it
    age_file.unlink()
    (recorded.bundle / "manifest.json").unlink()  # and its marker, as an interrupted fetch
    (recorded.bundle / ".safehold-fetching.json").write_text(
        json.dumps({"encounter_id": recorded.encounter}))
    size = descriptors(recorded.bundle)[age_file].size
    hostile([endless_bodies(true_first=True)])
    code, stderr, peak = fetch(recorded)
    assert code == 1, stderr
    assert len(stderr) == 1, stderr
    assert f"/streams/audio/chunks/2: the server sent more than the {size - 1000} bytes " \
        "expected; cut off there" in stderr[0]
    assert part.stat().st_size <= size and not age_file.exists()
    assert peak < RSS_BOUND


def test_a_wait_longer_than_five_minutes_is_not_slept_through(recorded: Recorded,
                                                             hostile) -> None:
    hostile([too_many_requests("86400")])
    started = time.monotonic()
    code, stderr, _peak = fetch(recorded)
    assert time.monotonic() - started < 30
    assert code == 3, stderr
    assert stderr == ["safehold: server refused (429 rate_limited): retry after 86400 seconds. "
                      "(a wait of 86400 s is longer than the 300 s waited at once; try again "
                      "later)"]


def test_a_flood_of_untrusted_chunks_is_named_in_a_few_lines(recorded: Recorded,
                                                            hostile) -> None:
    stranger = generate_signing_key("device-stranger")

    def flood(leaves: list[bytes]) -> list[bytes]:
        model = next(ChunkDescriptor.parse(split_note(leaf.decode())[0]) for leaf in leaves
                     if leaf.startswith(CHUNK_TAG.encode()))
        return leaves + [sign_descriptor(dataclasses.replace(model, seq=100 + n, final=False),
                                         stranger).encode() for n in range(25)]

    server = recorded.server
    hostile([rewritten_log(read_key(server.data_dir / "server.key"), server.name, flood)])
    code, stderr, _peak = fetch(recorded)
    assert code == 1, stderr
    refused = [line for line in stderr if line.startswith("safehold: refused: ")]
    assert len(refused) == 21, stderr
    assert refused[-1] == "safehold: refused: 5 more chunks, for the same reasons (not " \
        "downloaded)"
    assert len(list((recorded.bundle / "chunks").glob("*/*.age"))) >= 4  # the true ones


def test_a_part_longer_than_its_chunk_is_started_over(recorded: Recorded) -> None:
    """What an endless body left behind before fetch had bounds: not continued, not hashed."""
    first, _peak = run_measured("fetch", recorded.encounter, "-o", recorded.bundle, "--state",
                                recorded.phone)
    assert first.returncode == 0, first.stderr
    age_file = recorded.bundle / "chunks" / "audio" / "00000001.age"
    good = age_file.read_bytes()
    part = age_file.with_name(age_file.name + ".part")
    part.write_bytes(b"\0" * (10 * 1024 * 1024))
    age_file.unlink()
    (recorded.bundle / "manifest.json").unlink()  # and its marker, as an interrupted fetch
    (recorded.bundle / ".safehold-fetching.json").write_text(
        json.dumps({"encounter_id": recorded.encounter}))
    again, _peak = run_measured("fetch", recorded.encounter, "-o", recorded.bundle, "--state",
                                recorded.phone)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"(1 downloaded now, {len(good)} bytes" in again.stdout
    assert age_file.read_bytes() == good and not part.exists()
