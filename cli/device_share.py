"""`safehold device share ENCOUNTER [--name N] [--revoke CONTACT]`: one encounter, one reader.

Without --revoke it first finishes what earlier runs started — verifies and pins whoever
joined a share since (their safety number is printed), re-wraps every chunk of a shared
encounter not yet granted to its recipient — and then prints a new one-encounter invitation
(stdout, one line). `device contacts` and `device sync` do the first two steps too, so chunks
recorded after a share of a live encounter reach its recipient on the next run of any of them.
"""

from __future__ import annotations

import argparse
import sys
import time

from cli.common import EXIT_OK, EXIT_USAGE, EXIT_VERIFY, CliError
from cli.device import _registered, _timeout
from sync.api import ApiClient
from sync.device.account import client_for
from sync.device.state import Settings, StateFolder
from sync.people.book import ContactBook
from sync.people.owner import contact_book, refresh_contacts, revoke_contact
from sync.people.share import grant_pending, make_share


def grant_shares(state: StateFolder, settings: Settings, api: ApiClient,
                 encounter: str | None = None, refresh: bool = True) -> bool:
    """Pin who joined a share and re-wrap what they lack; False if something was refused.
    Costs no request on a device that never made a share."""
    book = contact_book(state)
    try:
        if not any(inv.terms.encounter for inv in book.invitations()):
            return True
        if refresh:
            refresh_contacts(book, api)
        report = grant_pending(state, settings, api, book, encounter)
        shares = {s.contact_id: s for s in book.share_recipients()}
    finally:
        book.close()
    for contact_id, count in report.granted.items():
        share = shares[contact_id]
        if count:
            print(f"shared {count} more chunk(s) of encounter {share.encounter_id} with "
                  f"{share.name} ({contact_id}); compare this safety number with theirs: "
                  f"{share.safety_number}", file=sys.stderr)
    for problem in report.problems:
        print(f"safehold: {problem}", file=sys.stderr)
    return not report.problems


def _check_share_of(book: ContactBook, api: ApiClient, encounter: str, contact_id: str) -> None:
    """--revoke ends a share of this encounter, never a trusted contact by mistake."""
    scoped = {inv.invitation_id for inv in book.invitations() if inv.terms.encounter == encounter}
    remote = api.json("GET", "/v1/contacts", auth=True)["contacts"]
    if not any(c["contact_id"] == contact_id and c["invitation_id"] in scoped for c in remote):
        raise CliError(f"{contact_id} is not a recipient of a share of {encounter} made on this "
                       "device (`safehold device contacts` lists them; a trusted contact is "
                       "removed with `device contacts --revoke`)", EXIT_USAGE)


def share(args: argparse.Namespace) -> int:
    state, settings = _registered(args)
    api = client_for(state, settings, _timeout())
    if args.revoke:
        book = contact_book(state)
        try:
            _check_share_of(book, api, args.encounter, args.revoke)
            revoke_contact(book, api, args.revoke)
        finally:
            book.close()
        print(f"revoked {args.revoke}: the server serves them nothing more of {args.encounter}",
              file=sys.stderr)
        return EXIT_OK
    from sync.device.roster import ensure_roster

    _roster, settings = ensure_roster(state, settings, api)  # the invitation names its devices
    clean = grant_shares(state, settings, api, args.encounter)
    book = contact_book(state)
    try:
        code, expires_at = make_share(book, settings, api, args.encounter, args.name,
                                      time.time())
    finally:
        book.close()
    print(code, flush=True)
    print(f"one-encounter invitation for {args.encounter}, valid until {expires_at}. Once the "
          "recipient has joined (`safehold contact join CODE`), run `safehold device contacts` "
          "(or this command, or `device sync`) to verify her key and re-wrap the recording to "
          "her; compare the safety number it prints with hers.", file=sys.stderr)
    return EXIT_OK if clean else EXIT_VERIFY
