"""Reading age identity files, plain or passphrase-protected, and asking for passphrases.

A passphrase-protected identity file is an age file (binary or armored, as `age -p [-a]` or
`safehold keygen --passphrase` make it) whose plaintext is an ordinary identity file.

Passphrases are read from the terminal without echo. For scripts and tests, the environment
variable SAFEHOLD_PASSPHRASE, when set, is used instead of asking (it is visible to other
processes of the same user; prefer the prompt on shared machines).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cli.common import EXIT_USAGE, EXIT_VERIFY, CliError
from crypto import age
from crypto.age.armor import BEGIN as ARMOR_BEGIN
from crypto.age.format import VERSION_LINE
from crypto.errors import CryptoError, NoIdentityMatched

PASSPHRASE_ENV = "SAFEHOLD_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
PassphrasePrompt = Callable[[str], str]


def ask_passphrase(prompt: str) -> str:
    """$SAFEHOLD_PASSPHRASE if set, else ask on the terminal without echo."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is not None:
        return from_env
    if not sys.stdin.isatty():
        raise CliError(f"a passphrase is needed: run in a terminal to be asked, or set "
                       f"{PASSPHRASE_ENV}", EXIT_USAGE)
    return getpass.getpass(prompt)


def ask_new_passphrase() -> str:
    """A new passphrase: $SAFEHOLD_PASSPHRASE, or typed twice on the terminal."""
    if os.environ.get(PASSPHRASE_ENV) is not None:
        passphrase = ask_passphrase("")
    else:
        passphrase = ask_passphrase("New passphrase: ")
        if ask_passphrase("Repeat the passphrase: ") != passphrase:
            raise CliError("the two passphrases differ; nothing was written", EXIT_USAGE)
    if not passphrase:
        raise CliError("an empty passphrase protects nothing; nothing was written", EXIT_USAGE)
    return passphrase


def is_age_file(data: bytes) -> bool:
    """Whether identity-file bytes are an encrypted age file rather than plain keys."""
    return data.startswith(VERSION_LINE + b"\n") or data.lstrip().startswith(ARMOR_BEGIN)


def load_identities(path: Path,
                    passphrase_prompt: PassphrasePrompt = ask_passphrase) -> list[age.Identity]:
    """The X25519 identities in a plain or passphrase-protected identity file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read identity file {path}: {exc.strerror}", EXIT_USAGE)
    if is_age_file(data):
        data = _open_protected(path, data, passphrase_prompt(f"Passphrase for {path}: "))
    try:
        identities = age.parse_identity_file(data.decode("utf-8"))
    except (UnicodeDecodeError, CryptoError) as exc:
        raise CliError(f"{path} is not an age identity file: {exc}", EXIT_USAGE)
    return list(identities)


def _open_protected(path: Path, data: bytes, passphrase: str) -> bytes:
    try:
        return age.decrypt(data, [age.Passphrase(passphrase)])
    except NoIdentityMatched:
        raise CliError(f"wrong passphrase for {path}", EXIT_VERIFY)
    except CryptoError as exc:
        raise CliError(f"cannot open {path}: {exc}", EXIT_VERIFY)
