"""The server's Ed25519 signing key: made on first start, then read on every start.

It signs every checkpoint, so it names the server (its public host[:port]) and must never be
replaced silently: a key whose name disagrees with SAFEHOLD_PUBLIC_URL stops the server rather
than signing checkpoints under a name clients would not recognise.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from crypto.errors import CryptoError
from crypto.signing import generate_signing_key, key_fingerprint, key_name, verifier_key

log = logging.getLogger("safehold.server")


class ServerKeyError(RuntimeError):
    """The key file is unreadable, malformed or names another server."""


def load_or_create_server_key(path: Path, server_name: str) -> str:
    """The signing key in `path`, created (mode 0600) if the file does not exist."""
    if not path.exists():
        _create(path, server_name)
    try:
        signing_key = path.read_text(encoding="utf-8").strip()
        name = key_name(signing_key)
    except (OSError, UnicodeDecodeError, CryptoError) as exc:
        raise ServerKeyError(f"cannot use the server key in {path}: {exc}") from exc
    if name != server_name:
        raise ServerKeyError(
            f"the server key in {path} is named {name!r} but SAFEHOLD_PUBLIC_URL names this "
            f"server {server_name!r}; set SAFEHOLD_PUBLIC_URL to match, or point "
            f"SAFEHOLD_SERVER_KEY_FILE at the key for {server_name!r}"
        )
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("server key %s is readable by other users; chmod 600 it", path)
    return signing_key


def _create(path: Path, server_name: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # usually the data folder
    signing_key = generate_signing_key(server_name)
    # Write a private temp file, then link it into place: link fails if another worker won the
    # race, and nobody ever reads a half-written key.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (signing_key + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        os.unlink(temp)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        log.warning("created a new server key for %s in %s", server_name, path)


def describe(signing_key: str) -> tuple[str, str]:
    """The verifier key and its fingerprint (what /v1/server serves and the log shows)."""
    verifier = verifier_key(signing_key)
    return verifier, key_fingerprint(verifier)
