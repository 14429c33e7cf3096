"""`safehold keygen -o FILE [--passphrase]`: a new age identity, like `age-keygen -o FILE`.

The file holds `# created: ...`, `# public key: age1...` and the `AGE-SECRET-KEY-1...` line,
with mode 0600; an existing file is never overwritten. With --passphrase the same text is
encrypted with age scrypt and armored (as `age -p -a` would), so `age -d FILE` opens it. The
passphrase is typed twice without echo, or taken from $SAFEHOLD_PASSPHRASE (see cli/identity.py).
The recipient (`age1...`) is printed on stdout, alone, so scripts can capture it.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from cli.common import EXIT_OK, EXIT_USAGE, CliError
from cli.identity import ask_new_passphrase
from crypto import age


def identity_file_text(identity: str, created: datetime) -> str:
    """The identity file as age-keygen writes it."""
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"# created: {stamp}\n"
            f"# public key: {age.recipient_of(identity)}\n"
            f"{identity}\n")


def write_new_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600; refuse if anything already exists there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise CliError(f"{path} already exists; refusing to overwrite an identity", EXIT_USAGE)
    except OSError as exc:
        raise CliError(f"cannot create {path}: {exc.strerror}", EXIT_USAGE)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, 0o600)  # whatever the umask: a secret key is for its owner only
            file.write(data)
            file.flush()
            os.fsync(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {exc.strerror}", EXIT_USAGE)


def keygen(args: argparse.Namespace) -> int:
    path: Path = args.output
    if os.path.lexists(path):  # said before a passphrase is asked for
        raise CliError(f"{path} already exists; refusing to overwrite an identity", EXIT_USAGE)
    identity = age.generate_identity()
    data = identity_file_text(identity, datetime.now(UTC)).encode()
    if args.passphrase:
        data = age.encrypt_with_passphrase(data, ask_new_passphrase(), armor=True)
    write_new_file(path, data)
    print(f"safehold: wrote a new identity to {path}; keep it secret and back it up",
          file=sys.stderr)
    print(age.recipient_of(identity))
    return EXIT_OK
