"""`safehold device invite | contacts | alert | safe`: the owner's trusted contacts.

`invite` prints the code (stdout, one line) for the owner to hand over in person or by a call.
`contacts` verifies and pins whoever accepted, then lists every contact with its safety number;
it exits 1 when it finds a contact key that does not match its invitation (a substituted key:
refused, revoked, never sealed to).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from cli.common import EXIT_OK, EXIT_USAGE, EXIT_VERIFY, CliError
from cli.device import _registered, _timeout
from crypto.errors import MalformedError
from crypto.slot import check_encounter
from sync.api import ApiClient
from sync.device.account import client_for
from sync.device.state import Settings, StateFolder
from sync.people.owner import (
    ContactLine,
    change_contact,
    contact_book,
    make_invitation,
    refresh_contacts,
    revoke_contact,
)

DEFAULT_NAME = "trusted contact"


def policy_text(policy: str, minutes: int | None) -> str:
    if policy == "check_in":
        return f"check-in within {minutes} min"
    return {"on_alert": "on alert"}.get(policy, policy)


def _policy_args(policy: str | None, minutes: int | None) -> None:
    if policy == "check_in" and minutes is None:
        raise CliError("--policy check_in needs --check-in-minutes M", EXIT_USAGE)
    if minutes is not None and policy != "check_in":
        raise CliError("--check-in-minutes is only for --policy check_in", EXIT_USAGE)
    if minutes is not None and not 1 <= minutes <= 7 * 24 * 60:
        raise CliError("--check-in-minutes must be between 1 and 10080 (a week)", EXIT_USAGE)


def invite(args: argparse.Namespace) -> int:
    _policy_args(args.policy, args.check_in_minutes)
    state, settings = _registered(args)
    api = client_for(state, settings, _timeout())
    from sync.device.roster import ensure_roster

    _roster, settings = ensure_roster(state, settings, api)  # the invitation names its devices
    name = args.name or DEFAULT_NAME
    book = contact_book(state)
    try:
        code, expires_at = make_invitation(book, settings, api, name, args.policy,
                                           args.check_in_minutes, time.time())
    finally:
        book.close()
    terms = f"for {name} ({policy_text(args.policy, args.check_in_minutes)})"
    if getattr(args, "long", False) or getattr(args, "qr", False):
        from cli.invite_short import show_long

        return show_long(args, settings.server_url, code, terms, expires_at)
    from cli.invite_short import invite_short

    return invite_short(args, state, api, code, name, terms,
                        lambda: _pinned_now(state, settings, api, code.split(".")[0]))


def _pinned_now(state: StateFolder, settings: Settings, api: ApiClient,
                invitation_id: str) -> ContactLine | None:
    """After a short code was answered: verify and pin the contact as soon as she has joined
    (as `device contacts` would), so both people can compare safety numbers on the call."""
    book = contact_book(state)
    try:
        report = refresh_contacts(book, api)
        states = {i.invitation_id: i.state for i in book.invitations()}
    finally:
        book.close()
    if states.get(invitation_id) == "waiting":
        return None
    _share_contacts(state, settings, api)
    return next((line for line in report.lines + report.refused
                 if line.status != "waiting" and line.contact_id is not None
                 and _invitation_of(api, line.contact_id) == invitation_id), None)


def _invitation_of(api: ApiClient, contact_id: str) -> str:
    return str(api.json("GET", f"/v1/contacts/{contact_id}", auth=True)["invitation_id"])


def _show(line: ContactLine) -> None:
    print(f"{line.name}  [{policy_text(line.policy, line.check_in_minutes)}]  {line.status}"
          f"  {line.contact_id or '-'}")
    if line.safety_number:
        print(f"    safety number: {line.safety_number}")
    if line.problem:
        print(f"    {line.problem}")


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.name:
        changes["name"] = args.name
    if args.policy:
        _policy_args(args.policy, args.check_in_minutes)
        changes["policy"] = args.policy
        changes["check_in_minutes"] = args.check_in_minutes
    if not changes:
        raise CliError("--change CONTACT needs --name and/or --policy", EXIT_USAGE)
    return changes


def contacts(args: argparse.Namespace) -> int:
    state, settings = _registered(args)
    api = client_for(state, settings, _timeout())
    book = contact_book(state)
    try:
        if getattr(args, "revoke", None):
            revoke_contact(book, api, args.revoke)
            print(f"revoked {args.revoke}: nothing more is sealed to or served to them",
                  file=sys.stderr)
        if getattr(args, "change", None):
            change_contact(book, api, args.change, _changes(args))
        short = _short_codes(state, api)
        report = refresh_contacts(book, api)
    finally:
        book.close()
    _share_contacts(state, settings, api)
    from cli.device_share import grant_shares  # one-encounter shares: re-wrap what they lack

    granted = grant_shares(state, settings, api, refresh=False)
    for line in report.lines:
        _show(line)
    from cli.invite_short import show_short_codes

    show_short_codes(short)
    if not report.lines and not short:
        print("no contacts yet; make an invitation with `safehold device invite`",
              file=sys.stderr)
    if report.refused:
        names = ", ".join(line.name for line in report.refused)
        print(f"safehold: REFUSED {names}: the key the server gave for them does not match "
              "the invitation secret (substituted). They were revoked and nothing is sealed "
              "to that key; invite them again and compare safety numbers.", file=sys.stderr)
        return EXIT_VERIFY
    return EXIT_OK if granted else EXIT_VERIFY


def _short_codes(state: StateFolder, api: ApiClient) -> list[Any]:
    """Answer short codes claimed since `device invite` stopped waiting (and list them)."""
    from sync.people.short_code import complete_all
    from sync.upload.outbox import now_rfc3339

    return complete_all(state, api, now_rfc3339())


def _share_contacts(state: StateFolder, settings: Settings, api: ApiClient) -> None:
    """Publish the contacts this device seals to as the account's signed contact set, so the
    other devices of the roster seal to them too (sync/people/contact_set.py)."""
    from sync.device.roster import ensure_roster
    from sync.people.contact_set import sync_contact_set

    roster, settings = ensure_roster(state, settings, api)
    sync_contact_set(state, settings, api, roster)


def mark(args: argparse.Namespace, kind: str) -> int:
    try:
        encounter = check_encounter(args.encounter)
    except MalformedError:
        raise CliError(f"{args.encounter!r} is not an encounter id (a lowercase UUID)",
                       EXIT_USAGE)
    state, settings = _registered(args)
    api = client_for(state, settings, _timeout())
    done = api.json("POST", f"/v1/encounters/{encounter}/{kind}", auth=True)
    if kind == "alert":
        print(f"alert raised on {encounter} at {done['at']}: released to your on-alert and "
              "check-in contacts, who are being notified")
    else:
        print(f"marked safe for {encounter} at {done['at']}: check-in contacts whose time "
              "has not run out get nothing")
    return EXIT_OK
