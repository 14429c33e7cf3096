"""`safehold device invite`'s two ways to hand over an invitation.

- By default a short code to read aloud (sync/people/short_code.py): printed on stdout, then
  this waits (--wait seconds) for the contact to use it, answers, and says how it went. The
  wait ends early when the code is used, burned by a wrong guess, or expires.
- `--long` (or `--qr`): the long code on stdout (alone, as scripts read it) and on stderr a
  link with it in the URL fragment (the web page `/contact` joins with those), and with
  `--qr` that link as a QR code in the terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from cli.common import EXIT_NETWORK, EXIT_OK, EXIT_USAGE, EXIT_VERIFY, CliError
from sync.api import ApiClient
from sync.device.state import StateFolder
from sync.people.short_code import (
    BURNED,
    DONE,
    EXPIRED,
    POLL_SECONDS,
    complete,
    payload_of,
    start,
)
from sync.upload.outbox import now_rfc3339


def show_long(args: argparse.Namespace, server_url: str, code: str, terms: str,
              expires_at: str) -> int:
    link = f"{server_url.rstrip('/')}/contact#invite={code}"
    print(code, flush=True)  # stdout holds the code alone, as scripts read it
    print(f"link (for the web page, or to paste): {link}", file=sys.stderr, flush=True)
    if args.qr:
        import segno

        segno.make(link, error="m").terminal(out=sys.stderr, compact=True)
    print(f"invitation {terms}, valid until {expires_at}. Hand the code (or the link) over in "
          "person or over a channel you trust: anyone holding it can join. Once they have "
          "joined, run `safehold device contacts` to verify their keys and compare the safety "
          "number with theirs.", file=sys.stderr)
    return EXIT_OK


def invite_short(args: argparse.Namespace, state: StateFolder, api: ApiClient, code: str,
                 name: str, terms: str, pinned_now: Callable[[], Any]) -> int:
    if not 1 <= args.expires <= 24 * 60:
        raise CliError("--expires must be between 1 and 1440 minutes", EXIT_USAGE)
    invite = start(state, api, payload_of(code), name, args.expires * 60)
    print(invite.code, flush=True)
    print(f"short code {terms}: read it to them; it works once, until {invite.expires_at}. "
          f"They run: safehold contact join {invite.code} --server {api.base_url} "
          f"--identity FILE   (waiting up to {args.wait:g} s)", file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.wait
    while True:
        invite = complete(state, api, invite, now_rfc3339())
        if invite.status == DONE:
            print(f"{name} used the code; the invitation was sent to them sealed",
                  file=sys.stderr, flush=True)
            return _until_pinned(name, pinned_now, deadline)
        if invite.status == BURNED:
            print(f"safehold: {invite.problem}", file=sys.stderr)
            return EXIT_VERIFY
        if invite.status == EXPIRED:
            print(f"safehold: the short code {invite.code} expired unused; make a new "
                  "invitation", file=sys.stderr)
            return EXIT_NETWORK
        if time.monotonic() > deadline:
            print(f"safehold: nobody used the code within {args.wait:g} s; it stays valid "
                  f"until {invite.expires_at}, and `safehold device contacts` answers it "
                  "once it is used", file=sys.stderr)
            return EXIT_NETWORK
        time.sleep(POLL_SECONDS)


def _until_pinned(name: str, pinned_now: Callable[[], Any], deadline: float) -> int:
    """Wait for the contact to join with what she received, then verify and pin her."""
    while (line := pinned_now()) is None:
        if time.monotonic() > deadline:
            print(f"{name} has not joined yet; `safehold device contacts` verifies and pins "
                  "them once they have", file=sys.stderr)
            return EXIT_OK
        time.sleep(POLL_SECONDS)
    print(f"{line.name}  {line.status}  {line.contact_id}")
    if line.safety_number:
        print(f"    safety number: {line.safety_number}")
        print("compare this safety number with the one their screen shows", file=sys.stderr)
    if line.problem:
        print(f"safehold: {line.problem}", file=sys.stderr)
        return EXIT_VERIFY
    return EXIT_OK


def show_short_codes(invites: list[Any]) -> None:
    for invite in invites:
        print(f"{invite.name}  [short code {invite.code}]  {invite.status}  "
              f"until {invite.expires_at}")
        if invite.problem:
            print(f"    {invite.problem}")
