"""Exit codes and error mapping shared by every subcommand (contract: DESIGN.md)."""

from __future__ import annotations

import argparse
import re

EXIT_OK = 0
EXIT_VERIFY = 1  # verification or decryption failure
EXIT_USAGE = 2
EXIT_NETWORK = 3  # network failure or server refusal


class CliError(Exception):
    """A failure the user can act on; carries the exit code to use."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(exc: BaseException) -> int | None:
    """Exit code for a failure, or None when it is a bug that should show its traceback."""
    if isinstance(exc, CliError):
        return exc.exit_code
    # Imported here so that `safehold --help` does not pay for them.
    from crypto.errors import CryptoError
    from sync.errors import SyncError

    if isinstance(exc, CryptoError):
        return EXIT_VERIFY
    if isinstance(exc, SyncError):
        return exc.exit_code
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return EXIT_USAGE
    return None


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def looks_like_encounter(text: str) -> bool:
    """Whether `text` is an encounter id in any case (a UUID), e.g. typed where a path goes."""
    return _UUID.fullmatch(text.strip().lower()) is not None


def encounter_arg(text: str) -> str:
    """An encounter id as typed or pasted (argparse type): surrounding spaces dropped and upper
    case folded, since a UUID is the same in either case and Safehold writes it in lower case."""
    if not looks_like_encounter(text):
        from sync.safetext import safe_text

        raise argparse.ArgumentTypeError(
            f"'{safe_text(text)}' is not an encounter id (a UUID such as "
            "0b3c6a1e-7f2d-4c59-9a41-5d8e2f1b7c60, as `record` or `contact list` prints it)")
    return text.strip().lower()
