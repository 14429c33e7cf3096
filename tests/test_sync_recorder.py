"""The recorder and the outbox, without any network: what is recorded is durable and openable."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from crypto import age
from crypto.descriptor import verify_descriptor
from crypto.signing import generate_signing_key, verifier_key
from sync.errors import StateError
from sync.upload.outbox import ChunkKey, Outbox
from sync.upload.recorder import Recorder, RecordOptions, Sealer, read_chunks


@pytest.fixture
def keys() -> dict[str, str]:
    identity = age.generate_identity()
    device = generate_signing_key("device-test")
    return {"identity": identity, "recipient": age.recipient_of(identity), "device": device,
            "verifier": verifier_key(device)}


def recorder(path: Path, keys: dict[str, str], **options: object) -> Recorder:
    sealer = Sealer(keys["device"], [keys["recipient"]])
    return Recorder(Outbox(path), sealer, RecordOptions(**options))  # type: ignore[arg-type]


def test_every_chunk_is_committed_sealed_signed_and_openable(tmp_path: Path, keys) -> None:
    media = os.urandom(10_000)
    rec = recorder(tmp_path / "outbox.db", keys, chunk_bytes=3000)
    encounter = rec.begin()
    rec.run(io.BufferedReader(io.BytesIO(media)))
    # A fresh connection (another process would see the same) finds everything committed.
    outbox = Outbox(tmp_path / "outbox.db")
    rows = outbox.chunks(encounter)
    audio = [r for r in rows if r["stream"] == "audio"]
    assert [(r["seq"], r["final"]) for r in audio] == [(0, 0), (1, 0), (2, 0), (3, 1)]
    assert {r["state"] for r in rows} == {"sealed"}  # never sent: the encounter is not created
    pieces = []
    for row in audio:
        chunk = outbox.chunk(ChunkKey(encounter, "audio", row["seq"]))
        assert chunk is not None
        descriptor = verify_descriptor(chunk.descriptor, keys["verifier"])
        assert (descriptor.seq, descriptor.final, descriptor.sha256) == (
            row["seq"], bool(row["final"]), row["sha256"])
        assert age.read_slot(chunk.body) == descriptor.slot
        pieces.append(age.decrypt(chunk.body, [keys["identity"]]))
    assert b"".join(pieces) == media


def test_stock_age_opens_a_recorded_chunk(tmp_path: Path, keys) -> None:
    rec = recorder(tmp_path / "outbox.db", keys, chunk_bytes=100)
    encounter = rec.begin()
    rec.run(io.BufferedReader(io.BytesIO(b"x" * 150)))
    chunk = Outbox(tmp_path / "outbox.db").chunk(ChunkKey(encounter, "audio", 1))
    assert chunk is not None
    (tmp_path / "id.txt").write_text(keys["identity"] + "\n")
    out = subprocess.run(["age", "-d", "-i", str(tmp_path / "id.txt")], input=chunk.body,
                         capture_output=True, check=True)
    assert out.stdout == b"x" * 50


def test_event_log_has_start_chunk_times_and_a_final_stop(tmp_path: Path, keys) -> None:
    rec = recorder(tmp_path / "outbox.db", keys, chunk_bytes=4)
    encounter = rec.begin()
    rec.run(io.BufferedReader(io.BytesIO(b"abcdefghij")))
    outbox = Outbox(tmp_path / "outbox.db")
    logs = [r for r in outbox.chunks(encounter) if r["stream"] == "log"]
    entries = [json.loads(age.decrypt(outbox.chunk(ChunkKey(encounter, "log", r["seq"])).body,
                                      [keys["identity"]])) for r in logs]
    assert [e["event"] for e in entries] == ["start", "chunk", "chunk", "chunk", "stop"]
    assert [e["seq"] for e in entries[1:4]] == [0, 1, 2]
    assert [r["final"] for r in logs] == [0, 0, 0, 0, 1]
    assert entries[-1]["chunks"] == 3 and entries[-1]["bytes"] == 10


def test_a_stopped_encounter_cannot_be_continued_but_a_running_one_can(
        tmp_path: Path, keys) -> None:
    first = recorder(tmp_path / "outbox.db", keys, chunk_bytes=4)
    encounter = first.begin()
    second = recorder(tmp_path / "outbox.db", keys, chunk_bytes=4, stream="video",
                      encounter=encounter)
    second.begin()
    first.run(io.BufferedReader(io.BytesIO(b"audio")))
    assert not first.summary.log_closed  # video is still recording
    second.run(io.BufferedReader(io.BytesIO(b"video")))
    assert second.summary.log_closed
    late = recorder(tmp_path / "outbox.db", keys, stream="other", encounter=encounter)
    with pytest.raises(StateError, match="stopped"):
        late.begin()


def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path, keys) -> None:
    for options in ({"stream": "Audio!"}, {"stream": "log"}, {"chunk_bytes": 0},
                    {"encounter": "not-a-uuid"}, {"rate": -1.0}):
        with pytest.raises(StateError):
            recorder(tmp_path / "outbox.db", keys, **options)
    assert Outbox(tmp_path / "outbox.db").chunks() == []


def test_final_flag_on_exact_multiples_and_empty_input() -> None:
    assert list(read_chunks(io.BufferedReader(io.BytesIO(b"")), 4)) == [(b"", True)]
    assert list(read_chunks(io.BufferedReader(io.BytesIO(b"abcdefgh")), 4)) == [
        (b"abcd", False), (b"efgh", True)]
    # A source that cannot peek (a raw pipe) learns of the end one read later.
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"abcd")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb", buffering=0) as raw:
        assert list(read_chunks(raw, 4)) == [(b"abcd", False), (b"", True)]


def test_interrupted_uploads_go_back_to_the_queue(tmp_path: Path, keys) -> None:
    rec = recorder(tmp_path / "outbox.db", keys, chunk_bytes=4)
    encounter = rec.begin()
    rec.run(io.BufferedReader(io.BytesIO(b"abcdefgh")))
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.mark_encounter_created(encounter)
    claimed = outbox.claim(3, now=1e12, exclude=set(), encounters={encounter})
    # The event log goes first.
    assert [c.key.stream for c in claimed] == ["log", "log", "log"]
    assert outbox.counts()["uploading"] == 3
    # The process dies here; the next one starts by putting them back.
    assert Outbox(tmp_path / "outbox.db").requeue_interrupted() == 3
    assert "uploading" not in outbox.counts()
    assert outbox.remaining() == len(outbox.chunks()) == 2 + 4  # audio; start, 2 chunks, stop


def test_unknown_encounter_id_is_a_new_uuid(tmp_path: Path, keys) -> None:
    rec = recorder(tmp_path / "outbox.db", keys)
    assert uuid.UUID(rec.begin()).version == 4
