"""`safehold contact join | list`: the trusted contact's side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import EXIT_OK, EXIT_USAGE, CliError
from cli.device import _timeout
from cli.device_contacts import policy_text
from cli.identity import load_identities
from crypto import age
from sync.people.client import Notify, contact_client, released_to_me
from sync.people.client import join as join_invitation
from sync.people.contact_state import ContactState


def _recipient(identity_file: Path) -> str:
    """The age recipient of the identity file (its passphrase is asked without echo)."""
    identities = [i for i in load_identities(identity_file) if isinstance(i, str)]
    if not identities:
        raise CliError(f"{identity_file} holds no age identity", EXIT_USAGE)
    return age.recipient_of(identities[0])


def _long_code(args: argparse.Namespace) -> str:
    """A short code is a transport for the long one (sync/people/short_code.py)."""
    from crypto.pake import looks_short

    if not looks_short(args.code):
        return str(args.code)
    from sync.api import ApiClient
    from sync.people.short_code import parse_short, receive

    print("exchanging keys with the owner's device over the short code…", file=sys.stderr,
          flush=True)
    api = ApiClient(args.server, timeout=_timeout())
    return receive(api, parse_short(args.code), args.wait)["code"]


def join(args: argparse.Namespace) -> int:
    recipient = _recipient(args.identity)
    notify = Notify(getattr(args, "notify_webhook", None), getattr(args, "notify_email", None))
    code = _long_code(args)
    membership = join_invitation(ContactState(args.state), args.server, code, recipient,
                                 str(args.identity.resolve()), args.name, notify, _timeout())
    print(f"joined as contact {membership.contact_id} of {membership.label} "
          f"(account {membership.account_id}) on {membership.server_name}")
    if membership.encounter is not None:  # `safehold device share`
        print(f"access: encounter {membership.encounter} only, once the owner's device has "
              "verified your key and re-wrapped it to you")
    else:
        print(f"policy: {policy_text(membership.policy, membership.check_in_minutes)}")
    print(f"safety number: {membership.safety_number}")
    print("Compare the safety number with the one the owner's phone shows (`safehold device "
          "contacts`). Nothing is released to you until their device has confirmed you.")
    if membership.webhook_secret:
        print(f"webhook secret (to check Safehold-Signature) saved in {args.state}/contact.json")
    return EXIT_OK


def list_encounters(args: argparse.Namespace) -> int:
    state = ContactState(args.state)
    for membership in state.require_memberships():
        view = released_to_me(state, membership, _timeout())
        print(f"{membership.label} (account {membership.account_id} on "
              f"{membership.server_name}, contact {membership.contact_id}): {view.status}, "
              f"{policy_text(view.policy, view.check_in_minutes)}")
        if view.status == "pending":
            print(f"    waiting for the owner's device to confirm you; safety number: "
                  f"{membership.safety_number}")
        for encounter in view.encounters:
            print(f"    {encounter['encounter_id']}  started {encounter['started_at']}  "
                  f"released {encounter['released_at']} ({encounter['reason']})")
        if view.status != "pending" and not view.encounters:
            print("    nothing released to you")
    return EXIT_OK


def keep_checkpoint(args: argparse.Namespace) -> int:
    """`safehold contact checkpoint FILE|-`: keep the signed checkpoint a notification carried."""
    import sys

    from sync.people.known_checkpoints import keep_notified, origin_parts
    from sync.people.notified import checkpoint_text
    from sync.safetext import safe_text
    from sync.upload.outbox import now_rfc3339

    try:
        raw = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror or exc}", EXIT_USAGE)
    note = checkpoint_text(raw)
    server_name, _encounter = origin_parts(note)
    state = ContactState(args.state)
    membership = next((m for m in state.require_memberships()
                       if m.server_name == server_name), None)
    if membership is None:
        raise CliError(f"that checkpoint is of a log on {server_name[:80]!r}, a server you "
                       f"joined no invitation on (state folder {args.state})", EXIT_USAGE)
    api = contact_client(state, membership, _timeout())
    kept = keep_notified(args.state, note, membership.server_key, membership.server_name,
                         now_rfc3339(), api.consistency)
    print(f"kept the server's signed checkpoint of encounter {kept.encounter}: {kept.new.size} "
          f"log entries (in {args.state}/checkpoints.json)")
    before = kept.largest_before
    if before is not None and before.size != kept.new.size:
        print(f"consistent with the one of {before.size} log entries you held"
              if kept.unchecked is None else
              f"not yet compared with the one of {before.size} log entries you hold (the "
              f"server could not be asked: {safe_text(kept.unchecked)}); `safehold fetch` will")
    return EXIT_OK
