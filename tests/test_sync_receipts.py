"""The client's receipt checks, against logs built here with the real crypto/.

The end-to-end tests (test_sync_e2e.py, test_sync_untrusted.py) run the same checks against a
real server; these cover every way a receipt can lie, including forks that only a server holding
its signing key could produce.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from crypto.checkpoint import Checkpoint, encounter_origin, sign_checkpoint
from crypto.merkle import consistency_proof, inclusion_proof, leaf_hash, root_hash
from crypto.signing import generate_signing_key, verifier_key
from sync.errors import UntrustedServer
from sync.upload.outbox import ChunkKey, Outbox
from sync.upload.receipts import ReceiptVerifier

SERVER_NAME = "127.0.0.1:8443"


class Log:
    """An encounter's log as an honest (or, given another history, a forking) server keeps it."""

    def __init__(self, encounter: str, server_key: str, notes: list[str] | None = None) -> None:
        self.encounter = encounter
        self.server_key = server_key
        self.notes = list(notes or [])

    def append(self, note: str) -> int:
        self.notes.append(note)
        return len(self.notes) - 1

    def hashes(self, size: int | None = None) -> list[bytes]:
        return [leaf_hash(n.encode()) for n in self.notes[:size]]

    def receipt(self, index: int, size: int, stream: str = "audio", seq: int | None = None
                ) -> dict[str, object]:
        hashes = self.hashes(size)
        checkpoint = Checkpoint(encounter_origin(SERVER_NAME, self.encounter), size,
                                root_hash(hashes))
        return {"encounter_id": self.encounter, "stream": stream,
                "seq": index if seq is None else seq, "leaf_index": index, "tree_size": size,
                "checkpoint": sign_checkpoint(checkpoint, self.server_key),
                "inclusion_proof": [base64.b64encode(h).decode()
                                    for h in inclusion_proof(index, hashes)]}

    def consistency(self, encounter: str, first: int, second: int) -> list[bytes]:
        self.fetches += 1
        return consistency_proof(first, self.hashes(second))

    fetches = 0


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Log, ReceiptVerifier, Outbox]:
    server_key = generate_signing_key(SERVER_NAME)
    log = Log(str(uuid.uuid4()), server_key)
    for i in range(12):
        log.append(f"descriptor note {i}\n")
    outbox = Outbox(tmp_path / "outbox.db")
    verifier = ReceiptVerifier(outbox, verifier_key(server_key), SERVER_NAME, log.consistency)
    return log, verifier, outbox


def key(log: Log, seq: int, stream: str = "audio") -> ChunkKey:
    return ChunkKey(log.encounter, stream, seq)


def test_receipts_in_upload_order_verify_without_extra_requests(setup) -> None:
    log, verifier, _ = setup
    for i in range(12):
        verifier.verify(key(log, i), log.notes[i], log.receipt(i, i + 1))
    # Each receipt for the newest leaf proves the previous root by itself.
    assert log.fetches == 0


def test_receipts_out_of_order_fetch_consistency_proofs_and_verify(setup) -> None:
    log, verifier, outbox = setup
    for i, size in ((5, 9), (2, 3), (8, 12), (0, 12), (7, 8)):
        verifier.verify(key(log, i), log.notes[i], log.receipt(i, size))
    assert log.fetches >= 2
    assert sorted(outbox.checkpoints(log.encounter)) == [2, 3, 7, 8, 9, 12]


def test_tampered_inclusion_proof_is_untrusted(setup) -> None:
    log, verifier, _ = setup
    receipt = log.receipt(3, 6)
    proof = receipt["inclusion_proof"]
    assert isinstance(proof, list)
    raw = bytearray(base64.b64decode(proof[0]))
    raw[0] ^= 1
    proof[0] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(UntrustedServer, match="does not verify"):
        verifier.verify(key(log, 3), log.notes[3], receipt)


def test_receipt_for_other_bytes_than_the_ones_sent_is_untrusted(setup) -> None:
    log, verifier, _ = setup
    with pytest.raises(UntrustedServer, match="does not verify"):
        verifier.verify(key(log, 3), "a descriptor the device never signed\n",
                        log.receipt(3, 6))


def test_checkpoint_signed_by_another_key_is_untrusted(setup, tmp_path: Path) -> None:
    log, verifier, _ = setup
    impostor = Log(log.encounter, generate_signing_key(SERVER_NAME), log.notes)
    with pytest.raises(UntrustedServer, match="BadSignature"):
        verifier.verify(key(log, 3), log.notes[3], impostor.receipt(3, 6))


def test_checkpoint_of_another_encounter_or_size_is_untrusted(setup) -> None:
    log, verifier, _ = setup
    other = Log(str(uuid.uuid4()), log.server_key, log.notes)
    with pytest.raises(UntrustedServer, match="another log"):
        verifier.verify(key(log, 3), log.notes[3], other.receipt(3, 6) | {
            "encounter_id": log.encounter})
    receipt = log.receipt(3, 6) | {"tree_size": 7}
    with pytest.raises(UntrustedServer, match="disagree"):
        verifier.verify(key(log, 3), log.notes[3], receipt)


def test_receipt_naming_another_chunk_is_untrusted(setup) -> None:
    log, verifier, _ = setup
    with pytest.raises(UntrustedServer, match="names another chunk"):
        verifier.verify(key(log, 4, "video"), log.notes[4], log.receipt(4, 6))


def test_a_fork_of_the_log_is_detected_on_the_fast_path(setup) -> None:
    log, verifier, _ = setup
    for i in range(4):
        verifier.verify(key(log, i), log.notes[i], log.receipt(i, i + 1))
    # The same server key signs a history in which an earlier leaf was replaced.
    fork = Log(log.encounter, log.server_key, ["dropped\n", *log.notes[1:]])
    with pytest.raises(UntrustedServer, match="inconsistent|forked"):
        verifier.verify(key(log, 4), log.notes[4], fork.receipt(4, 5))


def test_a_fork_is_detected_through_a_consistency_proof(setup) -> None:
    log, verifier, _ = setup
    verifier.verify(key(log, 2), log.notes[2], log.receipt(2, 3))
    fork = Log(log.encounter, log.server_key, ["dropped\n", *log.notes[1:]])
    # The forking server also answers the consistency request from its own history.
    verifier.fetch_consistency = fork.consistency
    with pytest.raises(UntrustedServer, match="inconsistent"):
        verifier.verify(key(log, 7), log.notes[7], fork.receipt(7, 10))


def test_two_roots_for_one_size_are_a_fork_even_after_a_restart(setup, tmp_path: Path) -> None:
    log, verifier, outbox = setup
    verifier.verify(key(log, 5), log.notes[5], log.receipt(5, 6))
    fork = Log(log.encounter, log.server_key, ["dropped\n", *log.notes[1:]])
    restarted = ReceiptVerifier(Outbox(tmp_path / "outbox.db"), verifier.server_key,
                                SERVER_NAME, fork.consistency)
    with pytest.raises(UntrustedServer, match="forked"):
        restarted.verify(key(log, 3), log.notes[3], fork.receipt(3, 6))
