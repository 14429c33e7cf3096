"""Checkpoints: the C2SP tlog-checkpoint text, signed by the server key; real-world interop."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from crypto.checkpoint import (
    Checkpoint,
    encounter_origin,
    open_checkpoint,
    sign_checkpoint,
    verify_checkpoints_consistent,
    verify_leaf_in_checkpoint,
)
from crypto.errors import BadProof, BadSignature, MalformedError
from crypto.merkle import EMPTY_ROOT, consistency_proof, inclusion_proof, leaf_hash, root_hash
from crypto.signing import generate_signing_key, signing_key_from_seed, verifier_key

ENCOUNTER = "0d9c2f0e-5b7a-4c1d-9e8f-a1b2c3d4e5f6"
SERVER = "127.0.0.1:8443"
ROOT = hashlib.sha256(b"some root").digest()

# A signed tree head published by the Go checksum database (sum.golang.org), with the public key
# every Go toolchain pins: a checkpoint signed by someone else's code that ours must accept.
GO_SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
GO_SUMDB_NOTE = (
    "go.sum database tree\n65209736\n5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=\n\n"
    "\u2014 sum.golang.org Az3grnbssgK7ubgFX36gVETtNv0U23qxyAhAMai2QUfeGa3nB/akvkMdlUErfcZz7l/R3c"
    "VtYspg3dxXABkGZZKdsQ8=\n"
)


@pytest.fixture(scope="module")
def server_key() -> str:
    return generate_signing_key(SERVER)


def test_go_checksum_database_tree_head_opens() -> None:
    cp = open_checkpoint(GO_SUMDB_NOTE, GO_SUMDB_VKEY, expected_origin="go.sum database tree")
    assert cp.size == 65209736
    assert base64.b64encode(cp.root).decode() == "5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo="
    with pytest.raises(BadSignature):
        open_checkpoint(GO_SUMDB_NOTE.replace("65209736", "65209737"), GO_SUMDB_VKEY)


def test_checkpoint_text_is_the_c2sp_format() -> None:
    origin = encounter_origin(SERVER, ENCOUNTER)
    assert origin == f"{SERVER}/safehold/encounter/{ENCOUNTER}"
    cp = Checkpoint(origin, 12, ROOT)
    assert cp.text() == f"{origin}\n12\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(cp.text()) == cp


def test_sign_and_open_round_trip(server_key: str) -> None:
    origin = encounter_origin(SERVER, ENCOUNTER)
    cp = Checkpoint(origin, 3, ROOT)
    note = sign_checkpoint(cp, server_key)
    assert note.startswith(cp.text() + "\n\u2014 " + SERVER + " ")
    assert open_checkpoint(note, verifier_key(server_key), expected_origin=origin) == cp


def test_checkpoint_of_another_log_is_refused(server_key: str) -> None:
    other = encounter_origin(SERVER, "11111111-2222-4333-8444-555555555555")
    note = sign_checkpoint(Checkpoint(other, 3, ROOT), server_key)
    with pytest.raises(BadProof):
        open_checkpoint(
            note, verifier_key(server_key), expected_origin=encounter_origin(SERVER, ENCOUNTER)
        )


@pytest.mark.parametrize("field", ["origin", "size", "root"])
def test_tampered_checkpoint_is_refused(server_key: str, field: str) -> None:
    origin = encounter_origin(SERVER, ENCOUNTER)
    cp = Checkpoint(origin, 5, ROOT)
    note = sign_checkpoint(cp, server_key)
    forged = {
        "origin": Checkpoint(encounter_origin("evil.example", ENCOUNTER), 5, ROOT),
        "size": Checkpoint(origin, 4, ROOT),
        "root": Checkpoint(origin, 5, hashlib.sha256(b"other").digest()),
    }[field]
    with pytest.raises(BadSignature):
        open_checkpoint(note.replace(cp.text(), forged.text()), verifier_key(server_key))


def test_checkpoint_signed_by_another_key_is_refused(server_key: str) -> None:
    impostor = generate_signing_key(SERVER)  # same name, different key
    note = sign_checkpoint(Checkpoint(encounter_origin(SERVER, ENCOUNTER), 1, ROOT), impostor)
    with pytest.raises(BadSignature):
        open_checkpoint(note, verifier_key(server_key))


def test_extension_lines_are_kept_on_parse() -> None:
    text = f"example.com/log\n7\n{base64.b64encode(ROOT).decode()}\next one\next two\n"
    cp = Checkpoint.parse(text)
    assert cp.extensions == ("ext one", "ext two")
    assert cp.text() == text


def test_empty_tree_checkpoint() -> None:
    cp = Checkpoint.parse(f"example.com/log\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\n")
    assert (cp.size, cp.root) == (0, EMPTY_ROOT)


B64_ROOT = base64.b64encode(ROOT).decode()
URLSAFE_ROOT = base64.urlsafe_b64encode(bytes([0xFF] * 32)).decode()
MALFORMED = {
    "no final newline": f"o\n1\n{B64_ROOT}",
    "two lines": "o\n1\n",
    "empty origin": f"\n1\n{B64_ROOT}\n",
    "size leading zero": f"o\n01\n{B64_ROOT}\n",
    "size negative": f"o\n-1\n{B64_ROOT}\n",
    "size 2**64": f"o\n{2**64}\n{B64_ROOT}\n",
    "size with space": f"o\n 1\n{B64_ROOT}\n",
    "root 31 bytes": f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "root hex": f"o\n1\n{ROOT.hex()}\n",
    "root unpadded": f"o\n1\n{B64_ROOT.rstrip('=')}\n",
    "root url-safe alphabet": f"o\n1\n{URLSAFE_ROOT}\n",
    "empty extension line": f"o\n1\n{B64_ROOT}\n\n",
    "carriage return": f"o\r\n1\n{B64_ROOT}\n",
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(MalformedError):
        Checkpoint.parse(text)


def test_receipt_style_checks_against_checkpoints(server_key: str) -> None:
    origin = encounter_origin(SERVER, ENCOUNTER)
    leaves_data = [f"leaf {i}\n".encode() for i in range(11)]
    hashes = [leaf_hash(d) for d in leaves_data]
    old = Checkpoint(origin, 6, root_hash(hashes[:6]))
    new = Checkpoint(origin, 11, root_hash(hashes))
    verify_leaf_in_checkpoint(old, leaves_data[4], 4, inclusion_proof(4, hashes[:6]))
    verify_checkpoints_consistent(old, new, consistency_proof(6, hashes))
    with pytest.raises(BadProof):
        verify_leaf_in_checkpoint(new, leaves_data[5], 4, inclusion_proof(4, hashes))
    elsewhere = Checkpoint(encounter_origin(SERVER, "11111111-2222-4333-8444-555555555555"), 11,
                           new.root)  # fmt: skip
    with pytest.raises(BadProof):
        verify_checkpoints_consistent(old, elsewhere, consistency_proof(6, hashes))


def test_origin_needs_a_valid_encounter_and_server_name() -> None:
    with pytest.raises(MalformedError):
        encounter_origin(SERVER, ENCOUNTER.upper())
    with pytest.raises(MalformedError):
        encounter_origin("", ENCOUNTER)


def documented_example(name: str) -> str:
    """The fenced block after `<!-- example: NAME -->` in docs/protocol.md, as note text."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text("utf-8")
    return doc.split(f"<!-- example: {name} -->\n```\n", 1)[1].split("```", 1)[0]


def test_documented_signed_checkpoint_is_reproduced_byte_for_byte() -> None:
    descriptor_note = documented_example("signed-descriptor")
    seed = hashlib.sha256(b"safehold example server key").digest()
    key = signing_key_from_seed("safehold.example.org", seed)
    origin = encounter_origin("safehold.example.org", "3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b")
    cp = Checkpoint(origin, 1, root_hash([leaf_hash(descriptor_note.encode("utf-8"))]))
    documented = documented_example("signed-checkpoint")
    assert sign_checkpoint(cp, key) == documented
    assert open_checkpoint(documented, verifier_key(key), expected_origin=origin) == cp
