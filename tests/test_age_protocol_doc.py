"""docs/protocol.md §1 (age chunks) checked against the code, the spec's formulas and stock age.

The worked example must be what crypto.age makes from the documented inputs, byte for byte.
Its intermediate values must follow from the documented formulas, computed here with
`cryptography`'s own HKDF, HMAC, X25519 and ChaCha20-Poly1305 rather than crypto/'s helpers, so
a wrong formula in the doc cannot hide behind the same mistake in the code. Debian's `age` must
open it, and every documented slot line must be accepted or refused exactly as the doc says.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto import age
from crypto.age import bech32
from crypto.errors import HeaderMacError, MalformedError

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
SLOT = age.Slot("3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b", "audio", 7, False)
LABELS = {  # documented: how each example input is derived
    "identity_secret": (b"safehold example contact identity", 32),
    "file_key": (b"safehold example file key", 16),
    "ephemeral_secret": (b"safehold example ephemeral share", 32),
    "payload_nonce": (b"safehold example payload nonce", 16),
}


def example(name: str) -> str:
    """The fenced block after `<!-- example: NAME -->` in the crypto-age section."""
    doc = DOC.read_text("utf-8")
    section = doc.split("<!-- section: crypto-age", 1)[1].split("<!-- end section: crypto-age")[0]
    return section.split(f"<!-- example: {name} -->\n```\n", 1)[1].split("```", 1)[0]


def values() -> dict[str, bytes]:
    pairs = (line.split(" = ") for line in example("age-chunk-values").splitlines())
    return {name.strip(): bytes.fromhex(value) for name, value in pairs}


def keys() -> tuple[str, str]:
    words = dict(line.split() for line in example("age-chunk-keys").splitlines())
    return words["identity"], words["recipient"]


def header_text() -> bytes:
    return example("age-chunk-header").encode("ascii")


def payload() -> bytes:
    return bytes.fromhex("".join(example("age-chunk-payload").split()))


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize()


def b64raw(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def with_mac(head: bytes, file_key: bytes) -> bytes:
    """`head` (version line and stanzas, ending in `---`) with its documented MAC line."""
    mac = hmac_sha256(hkdf(file_key, b"", b"header"), head)
    return head + b" " + b64raw(mac).encode() + b"\n"


def stock_age_decrypt(data: bytes, identity: str, tmp_path: Path) -> subprocess.CompletedProcess:
    key_file = tmp_path / "contact.key"
    key_file.write_text(identity + "\n")
    return subprocess.run(["age", "-d", "-i", str(key_file)], input=data, capture_output=True,
                          timeout=60)


def test_documented_inputs_come_from_their_labels_and_keys_match_them() -> None:
    documented = values()
    for name, (label, length) in LABELS.items():
        assert documented[name] == hashlib.sha256(label).digest()[:length], name
    identity, recipient = keys()
    assert bech32.decode(identity) == ("AGE-SECRET-KEY-", documented["identity_secret"])
    assert bech32.decode(recipient) == ("age", documented["recipient_public"])
    assert age.recipient_of(identity) == recipient
    assert documented["plaintext"] == b"safehold example chunk\n"


def test_documented_intermediate_values_follow_from_the_documented_formulas() -> None:
    v = values()
    secret = X25519PrivateKey.from_private_bytes(v["identity_secret"])
    assert secret.public_key().public_bytes_raw() == v["recipient_public"]
    ephemeral = X25519PrivateKey.from_private_bytes(v["ephemeral_secret"])
    assert ephemeral.public_key().public_bytes_raw() == v["ephemeral_share"]
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(v["recipient_public"]))
    assert shared == v["shared_secret"]
    # The recipient side reaches the same secret from the share.
    assert secret.exchange(X25519PublicKey.from_public_bytes(v["ephemeral_share"])) == shared
    wrap_key = hkdf(shared, v["ephemeral_share"] + v["recipient_public"],
                    b"age-encryption.org/v1/X25519")
    assert wrap_key == v["wrap_key"]
    assert ChaCha20Poly1305(wrap_key).encrypt(bytes(12), v["file_key"], None) == \
        v["wrapped_file_key"]
    assert hkdf(v["file_key"], b"", b"header") == v["header_mac_key"]
    assert hkdf(v["file_key"], v["payload_nonce"], b"payload") == v["payload_key"]

    head, mac_line = header_text().rsplit(b"\n---", 1)
    assert hmac_sha256(v["header_mac_key"], head + b"\n---") == v["header_mac"]
    assert mac_line == b" " + b64raw(v["header_mac"]).encode() + b"\n"
    assert f"-> X25519 {b64raw(v['ephemeral_share'])}\n{b64raw(v['wrapped_file_key'])}\n" \
        in header_text().decode()
    chunk0 = ChaCha20Poly1305(v["payload_key"]).encrypt(bytes(11) + b"\x01", v["plaintext"], None)
    assert payload() == v["payload_nonce"] + chunk0


def documented_rng() -> age.Rng:
    """The randomness encrypt draws, in order: file key, one ephemeral secret, payload nonce."""
    v = values()
    queue = [v["file_key"], v["ephemeral_secret"], v["payload_nonce"]]

    def rng(size: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == size
        return value

    return rng


def test_crypto_age_reproduces_the_documented_chunk_byte_for_byte() -> None:
    plaintext = values()["plaintext"]
    identity, recipient = keys()
    chunk = age.encrypt(plaintext, [recipient], slot=SLOT, rng=documented_rng())
    assert chunk == header_text() + payload()
    armored = age.encrypt(plaintext, [recipient], slot=SLOT, armor=True, rng=documented_rng())
    assert armored == example("age-chunk-armored").encode()
    assert age.read_slot(chunk) == SLOT
    for form in (chunk, armored):
        assert age.decrypt_chunk(form, [identity]) == (plaintext, SLOT)


def test_stock_age_opens_the_documented_chunk(tmp_path: Path) -> None:
    identity, _ = keys()
    for form in (header_text() + payload(), example("age-chunk-armored").encode()):
        done = stock_age_decrypt(form, identity, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"safehold example chunk\n"


def test_the_header_mac_binds_the_documented_slot(tmp_path: Path) -> None:
    identity, _ = keys()
    moved = header_text().replace(b" audio 7 more\n", b" audio 8 more\n") + payload()
    assert moved != header_text() + payload()
    assert age.read_slot(moved) == age.Slot(SLOT.encounter, "audio", 8, False)  # no key: a hint
    with pytest.raises(HeaderMacError):
        age.decrypt_chunk(moved, [identity])
    assert stock_age_decrypt(moved, identity, tmp_path).returncode != 0


def slot_lines() -> list[tuple[str, str]]:
    lines = example("slot-lines").splitlines()
    return [(line.split(" ", 1)[0], line.split(" ", 1)[1]) for line in lines]


def chunk_with_stanzas(*stanzas: bytes) -> bytes:
    """The documented chunk with its stanzas replaced, correctly MAC'd with its file key."""
    head = b"age-encryption.org/v1\n" + b"".join(stanzas) + b"---"
    return with_mac(head, values()["file_key"]) + payload()


def x25519_stanza() -> bytes:
    start = header_text().index(b"-> X25519 ")
    return header_text()[start : header_text().index(b"\n---")] + b"\n"


def test_documented_slot_lines_cover_both_verdicts() -> None:
    verdicts = [verdict for verdict, _ in slot_lines()]
    assert set(verdicts) == {"accept", "refuse"} and verdicts.count("refuse") >= 10


@pytest.mark.parametrize(("verdict", "line"), slot_lines())
def test_documented_slot_line_is_accepted_or_refused(verdict: str, line: str) -> None:
    identity, _ = keys()
    chunk = chunk_with_stanzas(line.encode() + b"\n\n", x25519_stanza())
    if verdict == "refuse":
        with pytest.raises(MalformedError):
            age.read_slot(chunk)
        with pytest.raises(MalformedError):
            age.decrypt_chunk(chunk, [identity])
        return
    encounter, stream, seq, end = line.split()[2:]
    expected = age.Slot(encounter, stream, int(seq), end == "final")
    assert age.read_slot(chunk) == expected
    assert age.decrypt_chunk(chunk, [identity]) == (values()["plaintext"], expected)


def test_slot_is_accepted_anywhere_among_stanzas(tmp_path: Path) -> None:
    identity, _ = keys()
    slot_stanza = header_text().split(b"\n", 1)[1].split(b"-> X25519", 1)[0]
    other = b"-> safehold-other-extension x\n\n"  # unknown types are ignored, and MAC'd
    last = chunk_with_stanzas(other, x25519_stanza(), slot_stanza)
    assert age.decrypt_chunk(last, [identity]) == (values()["plaintext"], SLOT)
    done = stock_age_decrypt(last, identity, tmp_path)
    assert (done.returncode, done.stdout) == (0, b"safehold example chunk\n")


@pytest.mark.parametrize("where", ["twice in a row", "before and after the recipient"])
def test_a_second_slot_stanza_is_refused(where: str) -> None:
    identity, _ = keys()
    slot_stanza = header_text().split(b"\n", 1)[1].split(b"-> X25519", 1)[0]
    if where == "twice in a row":
        chunk = chunk_with_stanzas(slot_stanza, slot_stanza, x25519_stanza())
    else:
        chunk = chunk_with_stanzas(slot_stanza, x25519_stanza(), slot_stanza)
    with pytest.raises(MalformedError, match="more than one safehold-slot"):
        age.decrypt_chunk(chunk, [identity])


def test_a_slot_stanza_with_a_body_is_refused() -> None:
    identity, _ = keys()
    slot_line = header_text().split(b"\n")[1]
    chunk = chunk_with_stanzas(slot_line + b"\nAA\n", x25519_stanza())  # body: one zero byte
    with pytest.raises(MalformedError, match="empty body"):
        age.decrypt_chunk(chunk, [identity])
