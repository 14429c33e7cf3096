"""safehold: record encounters safely, receive them as a trusted contact, verify and decrypt them.

Every subcommand and option of the contract in DESIGN.md is declared here, in one place, so the
contract can be read (and tested) at a glance. Handlers live in sibling modules and are imported
only when their subcommand runs, which keeps `safehold --help` fast and the modules independent.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from cli.common import encounter_arg, exit_code_for

Handler = Callable[[argparse.Namespace], int]
POLICY_HELP = ("when this contact may read: immediate (live), on_alert (when you raise an alert), "
               "check_in (if you have not marked yourself safe in time); default: on_alert")
UPLOAD_HELP = ("When the server cannot be reached, the chunks stay safe in the outbox and are "
               "retried while recording goes on, then for SAFEHOLD_SYNC_PATIENCE seconds "
               "without progress (environment; default 30, e.g. SAFEHOLD_SYNC_PATIENCE=600 "
               "waits ten minutes); `safehold device sync` sends what is left later. All "
               "`record` and `sync` runs on one --state share one upload queue: one of them "
               "uploads for all, log before audio before video.")


def default_state_dir() -> Path:
    """`$SAFEHOLD_HOME`, else `~/.safehold`, as DESIGN.md says."""
    home = os.environ.get("SAFEHOLD_HOME")
    return Path(home) if home else Path.home() / ".safehold"


def _add_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", type=Path, default=None,
        help="state folder (default: $SAFEHOLD_HOME, else ~/.safehold)",
    )


def _cmd(sub: argparse._SubParsersAction, name: str, handler: str, help_: str,
         state: bool = False) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_, description=help_, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    if state:
        _add_state(parser)
    return parser


def _add_device_commands(sub: argparse._SubParsersAction) -> None:
    device = sub.add_parser("device", help="the recording phone's side (reference client)")
    dsub = device.add_subparsers(dest="device_command", required=True, metavar="COMMAND")
    p = _cmd(dsub, "register", "cli.device:register", "new account and device", state=True)
    p.add_argument("--server", required=True, metavar="URL",
                   help="the Safehold server's address, e.g. https://safehold.example.org")
    p = _cmd(dsub, "invite", "cli.device:invite",
             "print an invitation code for one trusted contact (a short code to read "
             "aloud; --long for the long code and link)", state=True)
    p.add_argument("--name", metavar="N", help="what you call this contact (shown in lists)")
    p.add_argument("--policy", choices=["immediate", "on_alert", "check_in"], default="on_alert",
                   help=POLICY_HELP)
    p.add_argument("--check-in-minutes", type=int, metavar="M", default=None,
                   help="with --policy check_in: release if not marked safe within M minutes")
    _add_invite_transport(p)
    p = _cmd(dsub, "contacts", "cli.device:contacts",
             "contacts, their policies and safety numbers (verifies and pins new ones)",
             state=True)
    p.add_argument("--revoke", metavar="CONTACT", help="remove a contact: nothing more is "
                   "sealed to or served to them")
    p.add_argument("--change", metavar="CONTACT", help="change a contact's --name and/or "
                   "--policy [--check-in-minutes M]")
    p.add_argument("--name", metavar="N", help="with --change: the contact's new name")
    p.add_argument("--policy", choices=["immediate", "on_alert", "check_in"],
                   help="with --change: the new release policy")
    p.add_argument("--check-in-minutes", type=int, metavar="M", default=None,
                   help="with --policy check_in: minutes before release")
    p = _cmd(dsub, "share", "cli.device_share:share",
             "one-encounter invitation: the recipient (a lawyer) can read exactly that encounter",
             state=True)
    p.add_argument("encounter", metavar="ENCOUNTER", type=encounter_arg,
                   help="the encounter to share")
    p.add_argument("--name", metavar="N", help="what you call the recipient (shown in lists)")
    p.add_argument("--revoke", metavar="CONTACT", help="end the share with this recipient "
                   "(contact id): the server serves them nothing more")
    p = _cmd(dsub, "record", "cli.device:record",
             "cut FILE (or - for stdin) into chunks as a live recording would, seal, queue, upload",
             state=True)
    p.add_argument("file", metavar="FILE", help="the media to record, or - for stdin")
    p.add_argument("--stream", default="audio", metavar="NAME",
                   help="stream name: audio, video or another (default: audio)")
    p.add_argument("--chunk-bytes", type=int, default=256 * 1024, metavar="N",
                   help="bytes per chunk (default: 262144)")
    p.add_argument("--encounter", metavar="ID", type=encounter_arg,
                   help="add this stream to an encounter already begun on this device")
    p.add_argument("--rate", type=float, metavar="BYTES_PER_S",
                   help="pace reading like a live capture at this many bytes per second")
    p.add_argument("--offline", action="store_true", help="only queue; upload later with sync")
    p.epilog = UPLOAD_HELP
    p = _cmd(dsub, "note", "cli.device_note:note",
             "add a typed note (and a location) to an encounter's event log, and upload it",
             state=True)
    p.add_argument("encounter", metavar="ENCOUNTER", type=encounter_arg,
                   help="the encounter id record printed")
    p.add_argument("text", metavar="TEXT", help="what to note: badge number, agency, what was "
                   "said (at most 2000 characters)")
    p.add_argument("--lat", type=float, metavar="L", help="latitude in degrees (-90 to 90)")
    p.add_argument("--lon", type=float, metavar="L", help="longitude in degrees (-180 to 180)")
    p.add_argument("--accuracy", type=float, metavar="METRES",
                   help="with --lat/--lon: how far off the location may be, in metres")
    p.epilog = UPLOAD_HELP
    p = _cmd(dsub, "sync", "cli.device:sync", "upload everything still queued", state=True)
    p.epilog = UPLOAD_HELP
    _cmd(dsub, "status", "cli.device_status:status",
         "chunks held and tampering findings recorded on this device (offline)", state=True)
    p = _cmd(dsub, "link", "cli.device_link:link",
             "print a code that adds a new device to this account (signed roster)", state=True)
    p.add_argument("--wait", type=float, default=300.0, metavar="SECONDS",
                   help="how long to wait for the new device (default 300)")
    p = _cmd(dsub, "add", "cli.device_link:add",
             "join an account with a code from `safehold device link`", state=True)
    p.add_argument("code", metavar="CODE", help="the code `safehold device link` printed")
    p.add_argument("--server", required=True, metavar="URL", help="the Safehold server's address")
    p.add_argument("--wait", type=float, default=300.0, metavar="SECONDS",
                   help="how long to wait for the existing device to sign (default 300)")
    p = _cmd(dsub, "witnesses", "cli.device_witnesses:witnesses",
             "show or set the k-of-n witness cosignatures record and sync require", state=True)
    p.add_argument("--witness", action="append", metavar="VKEY",
                   help="a witness key to require (repeatable; replaces the list)")
    p.add_argument("--required", type=int, metavar="K",
                   help="valid cosignatures needed (default: all the witnesses given)")
    p.add_argument("--clear", action="store_true", help="require no witnesses")
    for name, help_ in (("alert", "raise an alert on an encounter"),
                        ("safe", "mark yourself safe for an encounter")):
        p = _cmd(dsub, name, f"cli.device:{name}", help_, state=True)
        p.add_argument("encounter", metavar="ENCOUNTER", type=encounter_arg,
                       help="the encounter id record printed")


def _add_invite_transport(p: argparse.ArgumentParser) -> None:
    p.add_argument("--long", action="store_true",
                   help="print the long code and a link (for pasting, or the web page) "
                   "instead of a short code to read aloud")
    p.add_argument("--qr", action="store_true", help="also show the link as a QR code")
    p.add_argument("--expires", type=int, default=30, metavar="MINUTES",
                   help="how long the short code is valid (1-1440, default 30)")
    p.add_argument("--wait", type=float, default=600.0, metavar="SECONDS",
                   help="how long to wait for the contact to use the short code (default "
                   "600); `device contacts` answers it later")


def _add_contact_commands(sub: argparse._SubParsersAction) -> None:
    contact = sub.add_parser("contact", help="a trusted contact's side")
    csub = contact.add_subparsers(dest="contact_command", required=True, metavar="COMMAND")
    p = _cmd(csub, "join", "cli.contact:join", "accept an invitation code", state=True)
    p.add_argument("code", metavar="CODE", help="the invitation code the owner gave you: a "
                   "short one read aloud (417-guitarist-revenge) or a long one")
    p.add_argument("--server", required=True, metavar="URL", help="the Safehold server's address")
    p.add_argument("--identity", required=True, type=Path, metavar="FILE",
                   help="your age identity file (safehold keygen makes one)")
    p.add_argument("--name", metavar="N", help="what you call the person who invited you")
    p.add_argument("--notify-webhook", metavar="URL", help="where to POST signed notifications")
    p.add_argument("--notify-email", metavar="ADDRESS", help="where to email notifications")
    p.add_argument("--wait", type=float, default=300.0, metavar="SECONDS",
                   help="with a short code: how long to wait for the owner's device to answer "
                   "(default 300)")
    _cmd(csub, "list", "cli.contact:list_encounters", "encounters released to this contact",
         state=True)
    p = _cmd(csub, "checkpoint", "cli.contact:keep_checkpoint",
             "keep the signed checkpoint a notification carried (webhook JSON, email, or the "
             "note); a later fetch or verify --state refuses a log that does not extend it",
             state=True)
    p.add_argument("file", type=Path, metavar="FILE", help="the saved notification, or - for stdin")
    p.epilog = ("exit codes: 0 kept, 1 it contradicts a checkpoint you hold (a forked log) or\n"
                "            is not signed by the server key you pinned, 2 usage")


EPILOG = """\
exit codes: 0 success, 1 verification or decryption failure, 2 usage,
            3 network failure or server refusal
'safehold COMMAND --help' explains each command; docs/protocol.md has the details."""


def _version() -> str:
    try:
        return f"safehold {metadata.version('safehold')}"
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "safehold (not installed)"


def _add_witness_commands(sub: argparse._SubParsersAction) -> None:
    witness = sub.add_parser("witness", help="an independent checkpoint witness (third party)")
    wsub = witness.add_subparsers(dest="witness_command", required=True, metavar="COMMAND")
    p = _cmd(wsub, "keygen", "cli.witness:keygen", "make the witness key; print its vkey",
             state=True)
    p.add_argument("--name", help="the witness's name, e.g. witness.legal-aid.example/w1")
    p = _cmd(wsub, "serve", "cli.witness:serve",
             "cosign checkpoints consistent with what it cosigned before", state=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8100, help="port to listen on (default 8100)")
    p.add_argument("--name", help="name for a new witness key (default host:port)")
    p.add_argument("--log-key", action="append", required=True, metavar="VKEY",
                   help="verifier key of a server whose checkpoints it witnesses (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safehold", description=__doc__.splitlines()[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _cmd(sub, "serve", "cli.serve:serve", "development server on the embedded default")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    _cmd(sub, "worker", "cli.serve:worker", "deliver queued notifications (webhook, email)")
    _cmd(sub, "migrate", "cli.serve:migrate", "create or upgrade the server's database")

    p = _cmd(sub, "keygen", "cli.keygen:keygen", "new age identity; prints its recipient")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE",
                   help="where to write the new identity (never overwritten)")
    p.add_argument("--passphrase", action="store_true",
                   help="protect the file with a passphrase (age scrypt; `age -d` opens it)")

    _add_device_commands(sub)
    _add_contact_commands(sub)
    _add_witness_commands(sub)

    p = _cmd(sub, "fetch", "cli.legal:fetch", "download everything released for an encounter",
             state=True)
    p.add_argument("encounter", metavar="ENCOUNTER", type=encounter_arg,
                   help="the encounter id (contact list shows it)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="BUNDLE",
                   help="a new folder for the bundle (run the same fetch again to resume)")
    p.add_argument("--zip", action="store_true", help="also write BUNDLE.zip to carry offline")
    p.epilog = ("waits as long as the server asks after \"too many requests\" (up to 300 s at\n"
                "a time) and says so on stderr.\n"
                "exit codes: 0 fetched and verified, 1 what the server sent fails a check (a\n"
                "            signature, a digest, a bound: see the line on stderr) or the bundle\n"
                "            does not verify, 2 usage, 3 server unreachable or refused")
    p = _cmd(sub, "verify", "cli.legal:verify", "check a bundle; no key needed")
    p.epilog = ("exit codes: 0 nothing was altered, 1 something was altered or fails to verify\n"
                "            (or too few witness cosignatures), 2 usage (no such file, not a\n"
                "            bundle)")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="a bundle folder or its .zip")
    p.add_argument("--witness", action="append", metavar="VKEY",
                   help="a witness key to trust (repeatable; `safehold witness keygen` prints it)")
    p.add_argument("--witnesses-required", type=int, metavar="K",
                   help="valid cosignatures needed on the latest checkpoint (default: all)")
    p.add_argument("--state", type=Path, dest="held_state", metavar="DIR",
                   help="a contact's state folder: the bundle's log must extend every "
                   "checkpoint of the encounter kept there (by fetch and `contact checkpoint`)")
    p.add_argument("--checkpoint", type=Path, action="append", metavar="FILE",
                   help="a signed checkpoint of the encounter you hold (e.g. from a "
                   "notification) that the bundle's log must extend (repeatable)")
    p = _cmd(sub, "decrypt", "cli.legal:decrypt",
             "verify, decrypt and reassemble a bundle; write report.json, report.html and "
             "report.pdf", state=True)
    p.epilog = ("exit codes: 0 decrypted and verified, 1 verification or decryption failed\n"
                "            (nothing is kept), 2 usage (no such file, not a bundle)")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="a bundle folder or its .zip")
    p.add_argument("-i", "--identity", required=True, type=Path, metavar="IDENTITY",
                   help="your age identity file (a passphrase-protected one asks for it)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR",
                   help="a new folder for the files, log.jsonl and the reports")
    p.add_argument("--no-pdf", action="store_true",
                   help="skip report.pdf (printed by Chromium from report.html when installed)")
    return parser


def _resolve(handler: str) -> Handler:
    module_name, func_name = handler.split(":")
    func: Handler = getattr(importlib.import_module(module_name), func_name)
    return func


# Commands whose first positional is a code a person pastes. A code is random base64url, so
# about 1 in 64 begins with "-", which argparse would take for an option.
CODE_COMMANDS = {("contact", "join"), ("device", "add")}
LOOKS_LIKE_CODE = re.compile(r"\s*-[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+\s*")  # <id>.<secret>[.<hash>]


def _code_last(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Move a pasted code that begins with "-" behind "--", where argparse reads it as CODE."""
    if len(argv) < 3 or tuple(argv[:2]) not in CODE_COMMANDS:
        return argv
    options = _subparser(parser, argv[:2])._option_string_actions
    i = 2
    while i < len(argv) and argv[i] != "--":
        word = argv[i]
        action = options.get(word.split("=", 1)[0])
        if action is None and LOOKS_LIKE_CODE.fullmatch(word):
            return argv[:i] + argv[i + 1:] + ["--", word]
        takes_value = action is not None and action.nargs != 0 and "=" not in word
        i += 2 if takes_value else 1
    return argv


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_code_last(parser, list(sys.argv[1:] if argv is None else argv)))
    if getattr(args, "state", "absent") is None:
        args.state = default_state_dir()
    try:
        code = _resolve(args.handler)(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        # `safehold … | head` closed our stdout: no traceback. The exit code is the shell's
        # "killed by SIGPIPE" (128 + 13), never 0: output was lost, so `verify` must not look
        # as if it passed. stdout goes to devnull so the interpreter's final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("safehold: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure becomes one actionable line and an exit code
        mapped = exit_code_for(exc)
        if mapped is None:
            raise
        # One line, whatever a server or a bundle put into the message (sync/safetext.py).
        from sync.safetext import safe_text

        print(f"safehold: {safe_text(str(exc))}", file=sys.stderr)
        return mapped


if __name__ == "__main__":
    sys.exit(main())
