"""Interop both ways with Debian's `age` 1.1.1 (subprocess) and with pyrage (rage).

Sizes straddle the 64 KiB STREAM chunk boundaries; recipients go from 1 to 5, with and without
the safehold-slot stanza, which stock tools must ignore: `age -d` of a slotted chunk prints
exactly its plaintext.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest
from age_tty import run_with_tty

from crypto import age
from crypto.age.stream import CHUNK

SEED = 20261128
_rand = random.Random(SEED)
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK, 5 * CHUNK - 1,
         *sorted(_rand.randrange(CHUNK, 2 << 20) for _ in range(3))]


@dataclass(frozen=True)
class Case:
    size: int
    recipients: int  # how many; the reader holds the key of the last one
    slot: age.Slot | None

    def __str__(self) -> str:
        return f"{self.size}B-{self.recipients}r-{'slot' if self.slot else 'noslot'}"


CASES = [
    Case(size, 1 + i % 5,
         age.Slot("5f0c1b9e-3f5a-4c8e-9d1e-2a7b6c4d8e01", "audio", i, i == len(SIZES) - 1)
         if i % 2 == 0 else None)
    for i, size in enumerate(SIZES)
]


@dataclass
class Keys:
    identities: list[str]
    recipients: list[str]
    files: list[Path]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    identities = [age.generate_identity() for _ in range(5)]
    files = []
    for n, identity in enumerate(identities):
        path = folder / f"key{n}.txt"
        path.write_text(f"# test key {n}\n{identity}\n")
        files.append(path)
    return Keys(identities, [age.recipient_of(i) for i in identities], files)


def plaintext(case: Case) -> bytes:
    return random.Random(f"{SEED}-{case}").randbytes(case.size)


def age_cli(*args: str, data: bytes) -> bytes:
    done = subprocess.run(["age", *args], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.mark.parametrize("case", CASES, ids=str)
def test_ours_opens_with_age_and_pyrage(case: Case, keys: Keys) -> None:
    message = plaintext(case)
    sealed = age.encrypt(message, keys.recipients[: case.recipients], slot=case.slot)
    reader = case.recipients - 1
    assert age_cli("-d", "-i", str(keys.files[reader]), data=sealed) == message
    identity = pyrage.x25519.Identity.from_str(keys.identities[reader])
    assert pyrage.decrypt(sealed, [identity]) == message
    assert age.read_slot(sealed) == case.slot


@pytest.mark.parametrize("case", CASES, ids=str)
def test_age_and_pyrage_files_open_with_ours(case: Case, keys: Keys) -> None:
    message = plaintext(case)
    recipients = keys.recipients[: case.recipients]
    mine = [keys.identities[case.recipients - 1]]
    by_age = age_cli(*(a for r in recipients for a in ("-r", r)), data=message)
    assert age.decrypt(by_age, mine) == message
    by_rage = pyrage.encrypt(message, [pyrage.x25519.Recipient.from_str(r) for r in recipients])
    assert age.decrypt(by_rage, mine) == message
    # Streamed in pieces that never line up with the 64 KiB + 16 chunk boundaries.
    decryptor = age.Decryptor(mine)
    pieces = [decryptor.update(by_age[i : i + 40_000]) for i in range(0, len(by_age), 40_000)]
    assert b"".join(pieces) + decryptor.finalize() == message


@pytest.mark.parametrize("case", CASES[:6], ids=str)
def test_armor_both_ways(case: Case, keys: Keys) -> None:
    message = plaintext(case)
    recipients = keys.recipients[: case.recipients]
    mine = keys.identities[case.recipients - 1]
    armored = age.encrypt(message, recipients, slot=case.slot, armor=True)
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert age_cli("-d", "-i", str(keys.files[case.recipients - 1]), data=armored) == message
    by_age = age_cli("-a", *(a for r in recipients for a in ("-r", r)), data=message)
    assert age.decrypt(by_age, [mine]) == message
    assert age.read_slot(armored) == case.slot


def test_keys_agree_with_age_keygen(keys: Keys, tmp_path: Path) -> None:
    for path, recipient in zip(keys.files, keys.recipients, strict=True):
        derived = subprocess.run(["age-keygen", "-y", str(path)], capture_output=True,
                                 text=True, check=True).stdout.strip()
        assert derived == recipient
    theirs = tmp_path / "theirs.key"
    subprocess.run(["age-keygen", "-o", str(theirs)], capture_output=True, check=True)
    identities = age.parse_identity_file(theirs.read_text())
    public = theirs.read_text().split("# public key: ")[1].split()[0]
    assert [age.recipient_of(i) for i in identities] == [public]


def test_passphrase_files_open_with_age_and_pyrage(tmp_path: Path) -> None:
    message = random.Random(SEED).randbytes(CHUNK + 7)
    sealed = age.encrypt_with_passphrase(message, "tr0ub4dor &3", work_factor=12)
    assert pyrage.passphrase.decrypt(sealed, "tr0ub4dor &3") == message
    path, out = tmp_path / "m.age", tmp_path / "m.out"
    path.write_bytes(age.encrypt_with_passphrase(message, "tr0ub4dor &3", work_factor=12,
                                                 armor=True))
    code, screen = run_with_tty(["age", "-d", "-o", str(out), str(path)], ["tr0ub4dor &3"])
    assert code == 0, screen
    assert out.read_bytes() == message


def test_age_p_files_open_with_ours(tmp_path: Path) -> None:
    message = random.Random(SEED + 1).randbytes(2 * CHUNK)
    source, sealed = tmp_path / "m.bin", tmp_path / "m.age"
    source.write_bytes(message)
    code, screen = run_with_tty(["age", "-p", "-o", str(sealed), str(source)], ["pw 1", "pw 1"])
    assert code == 0, screen
    data = sealed.read_bytes()
    assert age.read_header(data).stanzas[0].args[1] == "18"  # age's own work factor
    assert age.decrypt(data, [age.Passphrase("pw 1")]) == message
