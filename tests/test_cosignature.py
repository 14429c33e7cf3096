"""C2SP tlog-cosignature (Ed25519 cosignature/v1) and the tlog-witness request body."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.checkpoint import Checkpoint, sign_checkpoint
from crypto.cosignature import (
    add_signature_lines,
    cosign,
    cosignature_timestamp,
    cosigner_of_signing_key,
    format_add_checkpoint,
    parse_add_checkpoint,
    parse_cosigner_vkey,
    verify_cosignatures,
)
from crypto.errors import MalformedError
from crypto.signing import open_note, signing_key_from_seed, verifier_key

SEED = bytes(range(32))
LOG_KEY = signing_key_from_seed("log.example", bytes(32))
CP = Checkpoint("log.example/safehold/encounter/x", 5, hashlib.sha256(b"root").digest())

# Spec example (c2sp.org/tlog-cosignature): the witness line's timestamp is the message's
# "time 1679315147" line.
SPEC_LINE_B64 = ("jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
                 "qhf5nNo0xUe+mbIUBkBIfZ+qnA==")
# transparency-dev/formats note_cosigv1_test.go: TestCoSigV1Timestamp and a native vkey.
TDEV_SIG_B64 = ("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEH"
                "WWOworDcFiEBYJXORmnFBOBA==")
TDEV_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"


def witness_key(name: str = "witness.example/w1", seed: bytes = SEED) -> str:
    return signing_key_from_seed(name, seed)


def test_published_vectors_key_id_and_timestamps() -> None:
    cosigner = parse_cosigner_vkey(TDEV_VKEY)
    assert cosigner.name == "remora.n621.de" and cosigner.key_id.hex() == "da77ade7"
    assert cosigner.vkey == TDEV_VKEY
    assert cosignature_timestamp(base64.b64decode(SPEC_LINE_B64)[4:]) == 1679315147
    assert cosignature_timestamp(base64.b64decode(TDEV_SIG_B64)[4:]) == 1727964367
    # a plain note signature (64 bytes after the key id) is not a cosignature
    with pytest.raises(MalformedError):
        cosignature_timestamp(bytes(64))


def test_key_id_uses_type_0x04_and_message_is_the_spec_bytes() -> None:
    skey = witness_key()
    cosigner = cosigner_of_signing_key(skey)
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
    want_id = hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4]
    assert cosigner.key_id == want_id and cosigner.public_key == public
    line = cosign(CP.text(), skey, 1679315147)
    name, blob_b64 = line[len("\u2014 "):-1].split(" ")
    blob = base64.b64decode(blob_b64)
    assert name == "witness.example/w1" and blob[:4] == want_id
    assert blob[4:12] == (1679315147).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1679315147\n" + CP.text().encode()
    Ed25519PrivateKey.from_private_bytes(SEED).public_key().verify(blob[12:], message)


def test_round_trip_and_k_of_n_counting() -> None:
    note = sign_checkpoint(CP, LOG_KEY)
    w1, w2 = witness_key("w1", b"\x01" * 32), witness_key("w2", b"\x02" * 32)
    vkeys = [cosigner_of_signing_key(k).vkey for k in (w1, w2)]
    cosigned = add_signature_lines(note, [cosign(CP.text(), w1, 10), cosign(CP.text(), w2, 11)])
    valid, problems = verify_cosignatures(cosigned, vkeys)
    assert sorted(c.cosigner.name for c in valid) == ["w1", "w2"] and problems == []
    assert {c.timestamp for c in valid} == {10, 11}
    # the log's own signature still opens the cosigned note; cosignature lines are ignored
    assert open_note(cosigned, [verifier_key(LOG_KEY)]) == CP.text()
    # the same line twice is added and counted once
    again = add_signature_lines(cosigned, [cosign(CP.text(), w1, 10)])
    assert again == cosigned


def test_cosignature_over_another_checkpoint_does_not_count() -> None:
    other = Checkpoint(CP.origin, 6, hashlib.sha256(b"other").digest())
    line = cosign(other.text(), witness_key(), 5)
    lying = add_signature_lines(sign_checkpoint(CP, LOG_KEY), [line])
    valid, problems = verify_cosignatures(lying, [cosigner_of_signing_key(witness_key()).vkey])
    assert valid == [] and len(problems) == 1 and "witness.example/w1" in problems[0]


def test_unknown_witness_ignored_and_extension_lines_covered() -> None:
    cp = Checkpoint(CP.origin, CP.size, CP.root, ("ext line",))
    note = add_signature_lines(sign_checkpoint(cp, LOG_KEY), [cosign(cp.text(), witness_key(), 1)])
    other = cosigner_of_signing_key(witness_key("witness.example/w1", b"\x09" * 32)).vkey
    assert verify_cosignatures(note, [other]) == ([], [])  # key id differs: not its line
    tampered = note.replace("ext line", "ext lime")
    valid, problems = verify_cosignatures(tampered, [cosigner_of_signing_key(witness_key()).vkey])
    assert valid == [] and problems


def test_plain_note_key_is_not_a_cosigner_key() -> None:
    with pytest.raises(MalformedError, match="0x04"):
        parse_cosigner_vkey(verifier_key(witness_key()))
    with pytest.raises(MalformedError, match="key id"):
        parse_cosigner_vkey(TDEV_VKEY.replace("da77ade7", "da77ade8"))


def test_add_checkpoint_body_round_trip_and_spec_example() -> None:
    note = sign_checkpoint(CP, LOG_KEY)
    proof = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    body = format_add_checkpoint(4, proof, note)
    assert body.startswith(b"old 4\n") and parse_add_checkpoint(body) == (4, proof, note)
    spec = ("old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
            "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\nexample.com/behind-the-sofa\n"
            "20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u2014 x AAAAAAE=\n")
    old, spec_proof, spec_note = parse_add_checkpoint(spec.encode())
    assert old == 20852014 and len(spec_proof) == 2 and spec_note.startswith("example.com/")
    for bad in (b"old 01\n\n" + note.encode(), b"old 1\nnot-b64!\n\n" + note.encode(),
                b"new 1\n\n" + note.encode(), b"old 1\n" + note.encode().replace(b"\n\n", b"\n"),
                b"old 1\n" + b"".join([base64.b64encode(proof[0]) + b"\n"] * 64) + b"\n"):
        with pytest.raises(MalformedError):
            parse_add_checkpoint(bad)
