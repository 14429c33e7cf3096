"""Server settings, read from SAFEHOLD_* environment variables by one pure function."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crypto.cosignature import parse_cosigner_vkey
from crypto.errors import MalformedError

DEFAULT_PUBLIC_URL = "http://localhost:8000"
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


# name -> (environment variable, parser, default)
_INTEGERS: dict[str, tuple[str, int]] = {
    "MAX_CHUNK_BYTES": ("SAFEHOLD_MAX_CHUNK_BYTES", 4 * MIB),
    "MAX_STREAMS": ("SAFEHOLD_MAX_STREAMS", 8),
    "RATE_PER_MINUTE": ("SAFEHOLD_RATE_PER_MINUTE", 600),
    # 401s (no token, bad token, failed login) per client address; see server/identity/auth.py
    "AUTH_FAILURES_PER_MINUTE": ("SAFEHOLD_AUTH_FAILURES_PER_MINUTE", 30),
    "TOKEN_TTL_SECONDS": ("SAFEHOLD_TOKEN_TTL_SECONDS", 3600),
    # PostgreSQL connections each process keeps (docs/operations.md, "Running PostgreSQL")
    "DATABASE_POOL_SIZE": ("SAFEHOLD_DATABASE_POOL_SIZE", 10),
    "CHALLENGE_TTL_SECONDS": ("SAFEHOLD_CHALLENGE_TTL_SECONDS", 120),
    "INVITATION_TTL_SECONDS": ("SAFEHOLD_INVITATION_TTL_SECONDS", 900),
    # notifications and deletion (server/worker.py, server/evidence/deletion.py)
    "SMTP_PORT": ("SAFEHOLD_SMTP_PORT", 25),
    "WORKER_INTERVAL": ("SAFEHOLD_WORKER_INTERVAL", 5),
    "DELETION_DELAY_SECONDS": ("SAFEHOLD_DELETION_DELAY_SECONDS", 72 * 3600),
    "NOTIFY_RETRY_BASE_SECONDS": ("SAFEHOLD_NOTIFY_RETRY_BASE_SECONDS", 10),
    "NOTIFY_RETRY_MAX_SECONDS": ("SAFEHOLD_NOTIFY_RETRY_MAX_SECONDS", 3600),
    "NOTIFY_MAX_ATTEMPTS": ("SAFEHOLD_NOTIFY_MAX_ATTEMPTS", 30),
    "NOTIFY_LEASE_SECONDS": ("SAFEHOLD_NOTIFY_LEASE_SECONDS", 120),
    # witnesses (server/tlog/witnesses.py): per-request timeout, and the pause after a failure
    "WITNESS_TIMEOUT_SECONDS": ("SAFEHOLD_WITNESS_TIMEOUT_SECONDS", 2),
    "WITNESS_RETRY_SECONDS": ("SAFEHOLD_WITNESS_RETRY_SECONDS", 30),
}
# name -> environment variable, for optional text settings (None when unset)
_TEXTS: dict[str, str] = {
    "SMTP_HOST": "SAFEHOLD_SMTP_HOST",
    "SMTP_USERNAME": "SAFEHOLD_SMTP_USERNAME",
    "SMTP_PASSWORD": "SAFEHOLD_SMTP_PASSWORD",
    "METRICS_TOKEN": "SAFEHOLD_METRICS_TOKEN",  # GET /metrics needs it as a bearer token
}
# name -> environment variable, for on/off settings ("1", "true", "yes" / "0", "false", "no")
_FLAGS: dict[str, str] = {
    "SMTP_STARTTLS": "SAFEHOLD_SMTP_STARTTLS",
    "WEBHOOK_ALLOW_PRIVATE": "SAFEHOLD_WEBHOOK_ALLOW_PRIVATE",
    # phones PUT chunk bodies straight to S3 with presigned URLs (needs SAFEHOLD_BLOB_STORE=s3)
    "DIRECT_UPLOADS": "SAFEHOLD_DIRECT_UPLOADS",
}


def server_name_of(public_url: str) -> str:
    """The netloc (host[:port]) of the public URL: the name of the server's key."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise ConfigError(
            f"SAFEHOLD_PUBLIC_URL must be an http(s) URL like https://safehold.example.org, "
            f"got {public_url!r}"
        )
    return parts.netloc.lower()


def parse_witnesses(text: str) -> tuple[tuple[str, str], ...]:
    """SAFEHOLD_WITNESSES: entries "<url> <witness vkey>" separated by ";" or newlines."""
    witnesses: list[tuple[str, str]] = []
    for entry in text.replace("\n", ";").split(";"):
        if not entry.strip():
            continue
        parts = entry.split()
        if len(parts) != 2 or urlsplit(parts[0]).scheme not in ("http", "https"):
            raise ConfigError(f"SAFEHOLD_WITNESSES entries are '<http(s) url> <witness vkey>' "
                              f"separated by ';', got {entry.strip()!r}")
        try:
            parse_cosigner_vkey(parts[1])
        except MalformedError as exc:
            raise ConfigError(f"SAFEHOLD_WITNESSES: {parts[1]!r} is not a witness key ({exc}); "
                              "copy the vkey `safehold witness keygen` printed")
        witnesses.append((parts[0].rstrip("/"), parts[1]))
    return tuple(witnesses)


def database_url_of(text: str) -> str | None:
    """SAFEHOLD_DATABASE_URL: empty for the SQLite file, else a postgresql:// URL."""
    url = text.strip()
    if not url:
        return None
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ConfigError("SAFEHOLD_DATABASE_URL must be a postgresql:// URL like "
                          "postgresql://safehold:secret@db.example.org/safehold (or unset for "
                          f"the SQLite file), got one starting {url.split(':', 1)[0]!r}")
    return url


def _positive_int(variable: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{variable} must be a whole number, got {text!r}")
    if value < 1:
        raise ConfigError(f"{variable} must be at least 1, got {value}")
    return value


def _flag(variable: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{variable} must be 1/true/yes or 0/false/no, got {text!r}")


def load_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """Every server setting from `environ` (e.g. os.environ), with the documented defaults."""
    data_dir = Path(environ.get("SAFEHOLD_DATA_DIR") or "./safehold-data")
    public_url = (environ.get("SAFEHOLD_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    blob_store = (environ.get("SAFEHOLD_BLOB_STORE") or "local").lower()
    if blob_store not in ("local", "s3"):
        raise ConfigError(f"SAFEHOLD_BLOB_STORE must be 'local' or 's3', got {blob_store!r}")
    if blob_store == "s3" and not environ.get("SAFEHOLD_S3_BUCKET"):
        raise ConfigError("SAFEHOLD_BLOB_STORE=s3 needs SAFEHOLD_S3_BUCKET")
    config: dict[str, Any] = {
        "DATA_DIR": data_dir,
        "DATABASE_FILE": data_dir / "safehold.sqlite3",
        "DATABASE_URL": database_url_of(environ.get("SAFEHOLD_DATABASE_URL", "")),
        "BLOB_STORE": blob_store,
        "S3_BUCKET": environ.get("SAFEHOLD_S3_BUCKET") or None,
        "S3_ENDPOINT_URL": environ.get("SAFEHOLD_S3_ENDPOINT_URL") or None,
        "SERVER_KEY_FILE": Path(environ.get("SAFEHOLD_SERVER_KEY_FILE")
                                or data_dir / "server.key"),
        "PUBLIC_URL": public_url,
        "SERVER_NAME": server_name_of(public_url),
    }
    for name, (variable, default) in _INTEGERS.items():
        text = environ.get(variable)
        config[name] = _positive_int(variable, text) if text else default
    for name, variable in _TEXTS.items():
        config[name] = environ.get(variable) or None
    for name, variable in _FLAGS.items():
        config[name] = _flag(variable, environ.get(variable, ""))
    if config["DIRECT_UPLOADS"] and blob_store != "s3":
        raise ConfigError("SAFEHOLD_DIRECT_UPLOADS=1 needs SAFEHOLD_BLOB_STORE=s3")
    config["WITNESSES"] = parse_witnesses(environ.get("SAFEHOLD_WITNESSES", ""))
    config["MAIL_FROM"] = (environ.get("SAFEHOLD_MAIL_FROM")
                           or f"safehold@{config['SERVER_NAME'].rsplit(':', 1)[0].strip('[]')}")
    return config


def complete_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, then `overrides`; derived paths and the server name follow what was given."""
    environ: dict[str, str] = {}
    if "DATA_DIR" in overrides:
        environ["SAFEHOLD_DATA_DIR"] = str(overrides["DATA_DIR"])
    if "PUBLIC_URL" in overrides:
        environ["SAFEHOLD_PUBLIC_URL"] = str(overrides["PUBLIC_URL"])
    config = load_config(environ)
    config.update(overrides)
    return config
