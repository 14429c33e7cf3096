"""The tamper suite: every way of altering a bundle is named precisely and `verify` exits 1.

Each test copies one sound bundle (built with crypto/ by tests/bundlekit.py), alters it the way
an attacker or an accident would, runs the real `safehold verify`, and checks the exact file
(and seq) the report blames.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from bundlekit import (
    T0,
    Scenario,
    Witness,
    access_leaf,
    b64,
    record,
    run_cli,
    scenario,
    write_bundle,
)

from crypto import age
from crypto.descriptor import ChunkDescriptor, sign_descriptor
from crypto.signing import generate_signing_key, key_fingerprint, verifier_key


@pytest.fixture(scope="module")
def sound(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("sound") / "bundle"
    sc = scenario(root, {"audio": os.urandom(5 * 4096), "video": os.urandom(2 * 4096)})
    # A contact read the encounter: the server logged it, and the bundle carries it.
    contact = "7c0e2f4a-1b3d-4e5f-8a9b-0c1d2e3f4a5b"
    sc.witness.append(sc.recording.encounter, access_leaf(
        sc.witness, sc.recording.encounter, contact, "chunk audio/0", T0), T0)
    shutil.rmtree(root)
    write_bundle(root, sc.recording, sc.device, sc.witness)
    return sc


@pytest.fixture()
def bundle(sound: Scenario, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(sound.bundle, copy)
    return copy


def verify_fails(bundle: Path, *expected: str) -> str:
    result = run_cli("verify", bundle)
    assert result.returncode == 1, result.stdout + result.stderr
    for text in expected:
        assert text in result.stdout, f"{text!r} not in:\n{result.stdout}"
    assert "Result     FAILED" in result.stdout
    return result.stdout


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def test_the_untouched_copy_verifies(bundle: Path) -> None:
    result = run_cli("verify", bundle)
    assert result.returncode == 0, result.stdout
    assert "1 reads by contacts are in the log" in result.stdout


@pytest.mark.parametrize("where", ["payload", "header"])
def test_a_flipped_bit_in_a_chunk(bundle: Path, where: str) -> None:
    chunk = bundle / "chunks/audio/00000002.age"
    flip_bit(chunk, chunk.stat().st_size - 40 if where == "payload" else 30)
    verify_fails(bundle, "chunks/audio/00000002.age: was altered: it has",
                 "but its signed descriptor says")


def test_a_flipped_bit_in_a_descriptor(bundle: Path) -> None:
    descriptor = bundle / "chunks/audio/00000001.descriptor"
    text = descriptor.read_text()
    flip_bit(descriptor, text.index("size ") + 5)  # a digit of the size changes
    verify_fails(bundle, "chunks/audio/00000001.descriptor: not signed by a device key listed "
                 "in manifest.json")


def test_a_flipped_bit_in_an_inclusion_proof(bundle: Path) -> None:
    def corrupt(receipt: dict) -> None:
        proof = bytearray(base64.b64decode(receipt["inclusion_proof"][0]))
        proof[5] ^= 0x01
        receipt["inclusion_proof"][0] = b64(bytes(proof))

    edit_json(bundle / "chunks/audio/00000003.receipt.json", corrupt)
    verify_fails(bundle, "chunks/audio/00000003.receipt.json: the inclusion proof does not "
                 "place chunks/audio/00000003.descriptor at leaf 3")


def test_a_flipped_bit_in_the_latest_checkpoint(bundle: Path) -> None:
    note = bundle / "log/checkpoint.note"
    flip_bit(note, note.read_text().index("\n") + 1)  # the tree size
    verify_fails(bundle, "log/checkpoint.note is not signed by the server key in manifest.json")


def test_a_flipped_bit_in_a_receipt_checkpoint(bundle: Path) -> None:
    def corrupt(receipt: dict) -> None:
        note = receipt["checkpoint"]
        receipt["checkpoint"] = note.replace("\n4\n", "\n5\n", 1)

    edit_json(bundle / "chunks/audio/00000003.receipt.json", corrupt)
    verify_fails(bundle, "chunks/audio/00000003.receipt.json: its checkpoint is not signed by "
                 "the server key in manifest.json")


def test_a_flipped_bit_in_the_log(bundle: Path) -> None:
    leaves = (bundle / "log/leaves.jsonl").read_text().splitlines()
    record_ = json.loads(leaves[4])
    data = bytearray(base64.b64decode(record_["data"]))
    data[data.index(b"seq ") + 4] ^= 0x01  # seq 4 -> seq 5 in the log's copy
    leaves[4] = json.dumps({"index": 4, "data": b64(bytes(data))})
    (bundle / "log/leaves.jsonl").write_text("\n".join(leaves) + "\n")
    verify_fails(bundle, "log/leaves.jsonl does not hash to the root the server signed",
                 "log/leaves.jsonl leaf 4: chunk descriptor does not verify")


def test_a_flipped_bit_in_a_consistency_proof(bundle: Path) -> None:
    lines = (bundle / "log/consistency.jsonl").read_text().splitlines()
    entry = json.loads(lines[1])
    proof = bytearray(base64.b64decode(entry["proof"][-1]))
    proof[0] ^= 0x80
    entry["proof"][-1] = b64(bytes(proof))
    lines[1] = json.dumps(entry)
    (bundle / "log/consistency.jsonl").write_text("\n".join(lines) + "\n")
    verify_fails(bundle, f"log/consistency.jsonl line 2: the proof from size {entry['first']} "
                 f"to {entry['second']} does not verify")


def test_two_chunk_files_swapped(bundle: Path) -> None:
    one, two = bundle / "chunks/audio/00000001.age", bundle / "chunks/audio/00000002.age"
    data_one, data_two = one.read_bytes(), two.read_bytes()
    one.write_bytes(data_two)
    two.write_bytes(data_one)
    verify_fails(bundle, "chunks/audio/00000001.age: misplaced: its slot stanza says audio "
                 "seq 2, but it is stored as audio seq 1",
                 "chunks/audio/00000002.age: misplaced: its slot stanza says audio seq 1",
                 "chunks/audio/00000001.age: was altered")


def test_two_chunks_swapped_with_their_descriptors_and_receipts(bundle: Path) -> None:
    folder = bundle / "chunks/audio"
    for suffix in (".age", ".descriptor", ".receipt.json"):
        a, b = folder / f"00000001{suffix}", folder / f"00000003{suffix}"
        tmp = folder / "swap"
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)
    verify_fails(bundle, "chunks/audio/00000001.descriptor: describes audio seq 3, but it is "
                 "stored as audio seq 1",
                 "chunks/audio/00000003.age: misplaced: its slot stanza says audio seq 1",
                 "chunks/audio/00000001.age: the bundle holds no intact copy of audio seq 1, "
                 "which the server's log holds (leaf 1)")


def test_a_chunk_removed(bundle: Path) -> None:
    for suffix in (".age", ".descriptor", ".receipt.json"):
        (bundle / f"chunks/audio/00000002{suffix}").unlink()
    verify_fails(bundle, "chunks/audio/00000002.age is not in the bundle, but the server's log "
                 "holds audio seq 2 (leaf 2): it was removed or withheld")


def test_only_a_chunks_age_file_removed(bundle: Path) -> None:
    (bundle / "chunks/video/00000001.age").unlink()
    verify_fails(bundle, "chunks/video/00000001.age: is missing, so video seq 1 cannot be "
                 "checked", "chunks/video/00000001.age is not in the bundle")


def test_a_chunk_from_another_encounter(sound: Scenario, bundle: Path, tmp_path: Path) -> None:
    # The same phone and server, another encounter: every signature on it is genuine.
    other = record({"audio": os.urandom(5 * 4096)}, [age.recipient_of(sound.identity)],
                   sound.device, sound.witness)
    other_bundle = write_bundle(tmp_path / "other", other, sound.device, sound.witness)
    for suffix in (".age", ".descriptor", ".receipt.json"):
        shutil.copy(other_bundle / f"chunks/audio/00000002{suffix}",
                    bundle / f"chunks/audio/00000002{suffix}")
    verify_fails(bundle, "chunks/audio/00000002.descriptor: describes a chunk of another "
                 f"encounter ({other.encounter})",
                 "chunks/audio/00000002.age: belongs to another encounter: its slot stanza says "
                 f"audio seq 2 of {other.encounter}",
                 "chunks/audio/00000002.receipt.json: its checkpoint is for another log",
                 "chunks/audio/00000002.age: the bundle holds no intact copy of audio seq 2")


def test_a_forged_device_key_in_the_manifest(sound: Scenario, bundle: Path) -> None:
    forged = verifier_key(generate_signing_key(f"device-{sound.device.device_id}"))
    edit_json(bundle / "manifest.json",
              lambda m: m["devices"][0].update(device_key=forged))
    # The signed roster, not the manifest's list, says which keys are the owner's devices:
    # the substituted key is named as outside it, and the real chunks still verify.
    out = verify_fails(bundle, f"lists device {sound.device.device_id} (fingerprint "
                       f"{key_fingerprint(forged)}), which is NOT in the owner's device roster")
    assert "descriptor" not in out


def test_a_forged_device_key_with_every_descriptor_re_signed(sound: Scenario,
                                                             bundle: Path) -> None:
    """The forger re-signs every descriptor and the log's copies; the server's checkpoint
    signature over the original log still exposes it."""
    forger = generate_signing_key(f"device-{sound.device.device_id}")
    edit_json(bundle / "manifest.json",
              lambda m: m["devices"][0].update(device_key=verifier_key(forger)))
    resigned: dict[str, str] = {}
    for path in sorted(bundle.glob("chunks/*/*.descriptor")):
        note = path.read_text()
        new = sign_descriptor(ChunkDescriptor.parse(note.split("\n\n")[0] + "\n"), forger)
        path.write_text(new)
        resigned[note] = new
    lines = []
    for line in (bundle / "log/leaves.jsonl").read_text().splitlines():
        entry = json.loads(line)
        leaf = base64.b64decode(entry["data"]).decode()
        entry["data"] = b64(resigned.get(leaf, leaf).encode())
        lines.append(json.dumps(entry))
    (bundle / "log/leaves.jsonl").write_text("\n".join(lines) + "\n")
    # The roster still names the real key, so the re-signed descriptors are not trusted at
    # all; and the server's signature over the original log exposes the rewrite as well.
    verify_fails(bundle, "log/leaves.jsonl does not hash to the root the server signed",
                 "which is NOT in the owner's device roster",
                 "chunks/audio/00000000.descriptor: not signed by a device key")


def test_a_forged_server_key_in_the_manifest(bundle: Path) -> None:
    forged = verifier_key(generate_signing_key("127.0.0.1:8765"))
    edit_json(bundle / "manifest.json", lambda m: m["server"].update(server_key=forged))
    verify_fails(bundle, "log/checkpoint.note is not signed by the server key in manifest.json "
                 f"(fingerprint {key_fingerprint(forged)})",
                 "chunks/audio/00000000.receipt.json: its checkpoint is not signed by the "
                 "server key", f"key fingerprint {key_fingerprint(forged)}")


def test_a_wholly_forged_server_is_visible_only_by_its_fingerprint(sound: Scenario,
                                                                   tmp_path: Path) -> None:
    """Someone who re-creates the whole log under their own server key makes a bundle that is
    internally consistent. What gives it away is the server fingerprint verify prints first,
    which people compare out of band (documented in docs/protocol.md)."""
    fake_server = Witness(signing_key=generate_signing_key("127.0.0.1:8765"))
    fake = record({"audio": os.urandom(4096)}, [age.recipient_of(sound.identity)],
                  sound.device, fake_server)
    bundle = write_bundle(tmp_path / "fake", fake, sound.device, fake_server)
    result = run_cli("verify", bundle)
    assert result.returncode == 0
    printed = result.stdout.split("key fingerprint ")[1].split()[0]
    assert printed == key_fingerprint(fake_server.verifier)
    assert printed != key_fingerprint(sound.witness.verifier)


def test_an_access_log_entry_hidden_from_the_bundle(bundle: Path) -> None:
    (bundle / "access.jsonl").write_text("")
    verify_fails(bundle, "access.jsonl does not match the access entries of the log (0 listed, "
                 "1 in the log)")


def test_a_final_chunk_hidden_by_cutting_the_log(bundle: Path) -> None:
    """Dropping the last leaves (to pass a complete recording off as cut off) breaks the root."""
    lines = (bundle / "log/leaves.jsonl").read_text().splitlines()
    (bundle / "log/leaves.jsonl").write_text("\n".join(lines[:-2]) + "\n")
    verify_fails(bundle, "log/leaves.jsonl holds 6 leaves but log/checkpoint.note covers 8")


def test_an_access_record_not_signed_by_the_server(sound: Scenario, bundle: Path) -> None:
    lines = (bundle / "log/leaves.jsonl").read_text().splitlines()
    entry = json.loads(lines[-1])
    forged = base64.b64decode(entry["data"]).replace(b"chunk audio/0", b"chunk audio/1")
    entry["data"] = b64(forged)
    (bundle / "log/leaves.jsonl").write_text("\n".join([*lines[:-1], json.dumps(entry)]) + "\n")
    verify_fails(bundle, f"log/leaves.jsonl leaf {len(lines) - 1} is not an access record of "
                 "this encounter signed by the server key")


def test_a_manifest_that_is_not_json(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("{not json")
    verify_fails(bundle, "manifest.json is not valid JSON")
