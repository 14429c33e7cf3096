"""`safehold witness keygen | serve`: an independent checkpoint witness (run by a third party)."""

from __future__ import annotations

import argparse
import logging

from cli.common import EXIT_OK, CliError
from crypto.cosignature import check_cosigner_name, cosigner_of_signing_key
from crypto.errors import MalformedError
from crypto.signing import key_name


def _key(args: argparse.Namespace) -> str:
    from witness.state import load_or_create_key

    try:
        if args.name is not None:
            check_cosigner_name(args.name)
        return load_or_create_key(args.state, args.name)
    except (ValueError, MalformedError) as exc:
        raise CliError(str(exc))


def keygen(args: argparse.Namespace) -> int:
    """Make (or show) the witness key in the state folder; print its public vkey."""
    print(cosigner_of_signing_key(_key(args)).vkey)
    return EXIT_OK


def _log_keys(texts: list[str]) -> list[str]:
    from crypto.signing import public_key_bytes

    for text in texts:
        try:
            public_key_bytes(text)
        except MalformedError as exc:
            raise CliError(f"--log-key {text!r} is not a signed-note verifier key ({exc}); "
                           "copy it from the server's GET /v1/server")
    return texts


def serve(args: argparse.Namespace) -> int:
    from witness.app import create_witness_app

    if args.name is None and not (args.state / "witness.key").exists():
        args.name = f"{args.host}:{args.port}"
    key = _key(args)
    logs = _log_keys(args.log_key)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"witness {key_name(key)}: vkey {cosigner_of_signing_key(key).vkey}", flush=True)
    print(f"watching logs of: {', '.join(key_name(k) for k in logs)}", flush=True)
    app = create_witness_app(key, logs, args.state)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return EXIT_OK
