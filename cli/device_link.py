"""`safehold device link` (on a device in the roster) and `safehold device add CODE` (on the new
device): sync/device/link.py does the work; this prints what a person needs to see."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cli.common import EXIT_NETWORK, EXIT_OK
from cli.device import _registered, _timeout
from sync.device.account import client_for
from sync.device.link import POLL_SECONDS, add_this_device, complete_links, start_link
from sync.device.state import StateFolder


def link(args: argparse.Namespace) -> int:
    state, settings = _registered(args)
    api = client_for(state, settings, _timeout())
    code = start_link(state, settings, api)
    print(code.text(), flush=True)
    print(f"on the new device run: safehold device add CODE --server {settings.server_url} "
          f"--state DIR  (waiting up to {args.wait:g} s for it)", file=sys.stderr, flush=True)
    refused: set[str] = set()

    def warn(device_id: str) -> None:
        if device_id not in refused:
            refused.add(device_id)
            print(f"safehold: device {device_id} asked to join with a proof that matches no "
                  "code of this device: NOT added to the roster", file=sys.stderr, flush=True)

    deadline = time.monotonic() + args.wait
    while True:
        added = complete_links(state, state.require_registered(), api, on_refused=warn)
        for device_id in added:
            print(f"added device {device_id} to the roster; it now seals to your contacts",
                  flush=True)
        if added:
            return EXIT_OK
        if time.monotonic() > deadline:
            print("safehold: no new device asked to join in time; the code stays valid for "
                  "15 minutes and this device's next `safehold device sync` completes it",
                  file=sys.stderr)
            return EXIT_NETWORK
        time.sleep(POLL_SECONDS)


def add(args: argparse.Namespace) -> int:
    state = StateFolder(Path(args.state))
    settings, roster = add_this_device(state, args.server, args.code, args.wait, _timeout())
    recipients = state.outbox().contact_recipients()
    print(f"added device {settings.device_id} to account {settings.account_id} "
          f"with {settings.server_url}")
    print(f"roster: {roster.size} device(s), genesis {roster.genesis_hash} (compare it with "
          "`safehold device link`'s code on your other device)")
    print(f"chunks recorded here are sealed to {len(recipients)} contact(s) and to the "
          f"recovery recipient {settings.recovery_recipient}")
    return EXIT_OK
