"""`safehold device witnesses`: the k-of-n witness requirement this device holds its server to.

Set, every `device record` and `device sync` ends by checking the latest checkpoint of each
encounter it uploaded to; too few valid cosignatures by the named witnesses ends the command
with exit 1 (the chunks stay uploaded: the requirement is about what the server shows).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from cli.common import EXIT_OK, EXIT_VERIFY, CliError
from crypto.errors import MalformedError
from sync.api import ApiClient
from sync.device.state import Settings, StateFolder
from sync.safetext import safe_text
from sync.upload.outbox import Outbox
from sync.verifying.witnesses import WitnessPolicy, check_latest, load_policy, save_policy


def witnesses(args: argparse.Namespace) -> int:
    state = StateFolder(Path(args.state))
    state.require_registered()
    outbox = state.outbox()
    if args.clear:
        save_policy(outbox, None)
    elif args.witness:
        try:
            save_policy(outbox, WitnessPolicy.of(args.witness, args.required))
        except MalformedError as exc:
            raise CliError(f"--witness/--required: {exc}")
    elif args.required is not None:
        raise CliError("--required needs the witnesses' keys (--witness VKEY)")
    policy = load_policy(outbox)
    if policy is None:
        print("no witness requirement")
    else:
        print(f"require {policy.required} of {len(policy.keys)} witness(es):")
        for key in policy.keys:
            print(f"  {key}")
    return EXIT_OK


def require_witnesses(outbox: Outbox, api: ApiClient, settings: Settings,
                      encounters: Iterable[str]) -> None:
    """CliError (exit 1) naming the first encounter whose latest checkpoint falls short."""
    policy = load_policy(outbox)
    if policy is None:
        return
    for encounter in sorted(set(encounters)):
        result = check_latest(api, settings.server_key, settings.server_name, encounter, policy)
        if not result.ok:
            raise CliError(safe_text(f"encounter {encounter}: {result.summary()}"), EXIT_VERIFY)
