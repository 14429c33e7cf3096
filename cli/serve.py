"""`safehold serve`, `safehold migrate` and `safehold worker`."""

from __future__ import annotations

import argparse
import logging
import os

from cli.common import EXIT_NETWORK, EXIT_OK, EXIT_USAGE, CliError
from server.store.sql import StoreUnavailable


def _startup_error(exc: Exception) -> CliError:
    """Settings the operator must fix: exit 2; a database that does not answer: exit 3."""
    return CliError(str(exc), EXIT_NETWORK if isinstance(exc, StoreUnavailable) else EXIT_USAGE)


def _public_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(args: argparse.Namespace) -> int:
    """The development server (werkzeug, threaded) on SQLite and local disk by default."""
    from server.config import ConfigError, load_config
    from server.ops.logs import configure_logging, log_format
    from server.ops.startup import StartupError, check_database
    from server.tlog.serverkey import ServerKeyError

    os.environ.setdefault("SAFEHOLD_PUBLIC_URL", _public_url(args.host, args.port))
    configure_logging(log_format(os.environ))
    try:
        from server.app import create_app

        check_database(load_config(os.environ)["DATABASE_FILE"])
        app = create_app()
    except (ConfigError, ServerKeyError, StartupError, StoreUnavailable) as exc:
        raise _startup_error(exc)
    # run_simple rather than app.run: Flask's banner goes to stdout outside the log format.
    from werkzeug.serving import run_simple

    logging.getLogger("safehold.server").info("listening on %s",
                                              _public_url(args.host, args.port))
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    return EXIT_OK


def migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the server's database (the Procfile's release step)."""
    from server.config import ConfigError, load_config
    from server.ops.startup import StartupError, check_database
    from server.store.metadata import open_store

    try:
        config = load_config(os.environ)
        check_database(config["DATABASE_FILE"])
        store = open_store(config)
    except (ConfigError, StartupError, StoreUnavailable) as exc:
        raise _startup_error(exc)
    applied = store.migrate()
    for name in applied:
        print(f"applied migration {name}")
    print(f"database {store} is at schema version {store.schema_version()}")
    return EXIT_OK


def worker(args: argparse.Namespace) -> int:
    """Deliver notifications, release by check-in deadline, carry out due deletions (Procfile
    `worker:`); runs until SIGTERM/SIGINT."""
    from server.config import ConfigError, load_config
    from server.ops.logs import configure_logging, log_format
    from server.ops.startup import StartupError, check_database
    from server.worker import main

    configure_logging(log_format(os.environ))
    try:
        check_database(load_config(os.environ)["DATABASE_FILE"])
        return main(os.environ)
    except (ConfigError, StartupError, StoreUnavailable) as exc:
        raise _startup_error(exc)
