"""Exit codes and error mapping shared by every subcommand (contract: DESIGN.md)."""

from __future__ import annotations

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
