"""`safehold keygen` as a user runs it (a real subprocess), checked with Debian's `age`."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from age_tty import run_with_tty

from cli.common import CliError
from cli.identity import load_identities
from crypto import age

ROOT = Path(__file__).resolve().parent.parent
SAFEHOLD = [sys.executable, "-m", "cli.main"]
RECIPIENT_LINE = re.compile(r"age1[02-9ac-hj-np-z]{58}\n")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SAFEHOLD_PASSPHRASE"}
    return {**env, **extra}


def safehold(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAFEHOLD, *args], cwd=ROOT, env=clean_env(**extra_env),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def test_keygen_writes_an_identity_file_that_age_uses(tmp_path: Path) -> None:
    key = tmp_path / "me.key"
    done = safehold("keygen", "-o", str(key))
    assert done.returncode == 0, done.stderr
    assert RECIPIENT_LINE.fullmatch(done.stdout)
    recipient = done.stdout.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    lines = key.read_text().splitlines()
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[0])
    assert lines[1] == f"# public key: {recipient}"
    assert age.recipient_of(lines[2]) == recipient
    # age-keygen agrees on the public key, and age decrypts with the file as -i.
    derived = subprocess.run(["age-keygen", "-y", str(key)], capture_output=True, text=True)
    assert derived.stdout.strip() == recipient
    sealed = subprocess.run(["age", "-e", "-r", recipient], input=b"for me only",
                            capture_output=True, check=True).stdout
    opened = subprocess.run(["age", "-d", "-i", str(key)], input=sealed, capture_output=True)
    assert opened.stdout == b"for me only"
    assert load_identities(key) == [lines[2]]


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    key = tmp_path / "me.key"
    key.write_text("precious\n")
    done = safehold("keygen", "-o", str(key))
    assert done.returncode == 2
    assert "already exists" in done.stderr and done.stdout == ""
    assert key.read_text() == "precious\n"


def test_keygen_refuses_a_missing_directory(tmp_path: Path) -> None:
    done = safehold("keygen", "-o", str(tmp_path / "nowhere" / "me.key"))
    assert done.returncode == 2 and "cannot create" in done.stderr


def test_passphrase_file_is_armored_scrypt_and_opens_with_age(tmp_path: Path) -> None:
    key = tmp_path / "me.key.age"
    done = safehold("keygen", "-o", str(key), "--passphrase", SAFEHOLD_PASSPHRASE="correct horse")
    assert done.returncode == 0, done.stderr
    recipient = done.stdout.strip()
    data = key.read_bytes()
    assert data.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert b"AGE-SECRET-KEY" not in data
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert age.read_header(data).stanzas[0].type == "scrypt"
    out = tmp_path / "plain.key"
    code, screen = run_with_tty(["age", "-d", "-o", str(out), str(key)], ["correct horse"])
    assert code == 0, screen
    assert f"# public key: {recipient}" in out.read_text()
    identities = load_identities(key, lambda _prompt: "correct horse")
    assert [age.recipient_of(i) for i in identities] == [recipient]  # type: ignore[arg-type]
    with pytest.raises(CliError) as wrong:
        load_identities(key, lambda _prompt: "wrong horse")
    assert wrong.value.exit_code == 1 and "wrong passphrase" in str(wrong.value)


def test_passphrase_is_asked_twice_on_the_terminal(tmp_path: Path) -> None:
    key = tmp_path / "me.key.age"
    argv = [*SAFEHOLD, "keygen", "-o", str(key), "--passphrase"]
    code, screen = run_with_tty(argv, ["s3cret words", "s3cret words"], cwd=str(ROOT),
                                env=clean_env())
    assert code == 0, screen
    assert "s3cret" not in screen  # typed without echo
    recipient = RECIPIENT_LINE.search(screen.replace("\r\n", "\n"))
    assert recipient is not None
    identities = load_identities(key, lambda _prompt: "s3cret words")
    assert age.recipient_of(identities[0]) == recipient.group().strip()  # type: ignore[arg-type]


def test_differing_passphrases_write_nothing(tmp_path: Path) -> None:
    key = tmp_path / "me.key.age"
    argv = [*SAFEHOLD, "keygen", "-o", str(key), "--passphrase"]
    code, screen = run_with_tty(argv, ["one thing", "another"], cwd=str(ROOT), env=clean_env())
    assert code == 2 and "differ" in screen
    assert not key.exists()


def test_passphrase_without_terminal_or_variable_is_a_usage_error(tmp_path: Path) -> None:
    key = tmp_path / "me.key.age"
    done = safehold("keygen", "-o", str(key), "--passphrase")
    assert done.returncode == 2 and "SAFEHOLD_PASSPHRASE" in done.stderr
    assert not key.exists()


def test_identity_files_made_by_age_load(tmp_path: Path) -> None:
    plain = tmp_path / "age.key"
    subprocess.run(["age-keygen", "-o", str(plain)], capture_output=True, check=True)
    recipient = subprocess.run(["age-keygen", "-y", str(plain)], capture_output=True,
                               text=True, check=True).stdout.strip()
    identities = load_identities(plain)
    assert [age.recipient_of(i) for i in identities] == [recipient]  # type: ignore[arg-type]
    # The same file protected by `age -p` (work factor 18, binary) loads with its passphrase.
    protected = tmp_path / "age.key.age"
    code, screen = run_with_tty(["age", "-p", "-o", str(protected), str(plain)], ["pw", "pw"])
    assert code == 0, screen
    assert load_identities(protected, lambda _prompt: "pw") == identities
