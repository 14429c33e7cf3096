"""`safehold fetch | verify | decrypt`: the legal-aid side (DESIGN.md, issue 6)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import EXIT_OK, EXIT_USAGE, EXIT_VERIFY, CliError, looks_like_encounter
from cli.identity import load_identities
from crypto import age
from crypto.errors import CryptoError, MalformedError
from crypto.slot import check_encounter
from sync.bundle.files import (
    CHECKPOINT,
    MANIFEST,
    BundleError,
    BundleReader,
    BundleRefused,
    zip_bundle,
)
from sync.report.custody import build_report, chunks_word, verification_text, write_report
from sync.report.notes import notes_and_locations, terminal_lines
from sync.report.summary import known_names
from sync.safetext import safe_lines, safe_text
from sync.verifying.decrypt import verify_and_decrypt
from sync.verifying.verify import Verification, verify_bundle
from sync.verifying.witnesses import WitnessPolicy, WitnessResult, check_note
from sync.workers import reuse_freed_buffers

if TYPE_CHECKING:
    from sync.api import RateWait
    from sync.errors import ServerRefusal
    from sync.fetch import Plan, Reader


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr); silent otherwise."""
    if not sys.stderr.isatty() or total == 0:
        yield lambda _n: None
        return
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked while it runs
    with tqdm(total=total, unit="chunk", desc=what, file=sys.stderr, leave=False) as bar:
        yield bar.update


def say(text: str = "") -> None:
    """Print to stdout; every line passes through safe_text (names and texts in a bundle or
    from a server are not ours, see sync/safetext.py)."""
    sys.stdout.write(safe_lines(text) + "\n")


@contextmanager
def open_bundle(path: Path) -> Iterator[BundleReader]:
    """The bundle, open for reading. A bundle that breaks the format's limits or layout, or a
    damaged zip member met while reading, ends the command with exit 1 naming the file; a path
    that is no bundle at all, with exit 2."""
    if not path.exists() and looks_like_encounter(str(path)):
        raise CliError(f"there is no bundle {path}, and that looks like an encounter id; fetch "
                       f"it first: safehold fetch {str(path).strip().lower()} -o BUNDLE")
    try:
        reader = BundleReader(path)
    except BundleRefused as exc:
        raise CliError(str(exc), EXIT_VERIFY)
    except BundleError as exc:
        raise CliError(str(exc), EXIT_USAGE)
    try:
        with reader:
            yield reader
    except BundleRefused as exc:
        raise CliError(str(exc), EXIT_VERIFY)
    except zipfile.BadZipFile as exc:  # e.g. a member's CRC-32 does not match its bytes
        raise CliError(f"{path} was refused: a zip member is damaged ({exc})", EXIT_VERIFY)


def run_verification(reader: BundleReader) -> Verification:
    entries, _strays = reader.chunk_entries()
    with progress_bar(len(entries), "verifying") as tick:
        return verify_bundle(reader, progress=tick)


def verify(args: argparse.Namespace) -> int:
    reuse_freed_buffers()
    policy = witness_policy(args)
    held = held_files(args.checkpoint or [])
    with open_bundle(args.bundle) as reader:
        result = run_verification(reader)
        if args.held_state is not None or held:
            from sync.verifying.held import check_against_held

            check_against_held(reader, result, args.held_state, held)
        witnessed = bundle_witnesses(reader, policy) if policy else None
    say(verification_text(result).rstrip("\n"))
    if witnessed is not None:
        if not witnessed.ok:
            raise CliError(safe_text(witnessed.summary()), EXIT_VERIFY)
        say(witnessed.summary())
    return EXIT_OK if result.ok else EXIT_VERIFY


def held_files(paths: list[Path]) -> list[tuple[str, str]]:
    """(name, text) of each `--checkpoint FILE`; a notification's JSON body or email works too
    (sync/people/notified.py finds the note in it)."""
    from sync.people.notified import checkpoint_text

    found = []
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CliError(f"--checkpoint {path}: {exc.strerror or exc}")
        found.append((str(path), checkpoint_text(raw)))
    return found


def witness_policy(args: argparse.Namespace) -> WitnessPolicy | None:
    keys: list[str] = args.witness or []
    if not keys:
        if args.witnesses_required is not None:
            raise CliError("--witnesses-required needs the witnesses' keys (--witness VKEY)")
        return None
    try:
        return WitnessPolicy.of(keys, args.witnesses_required)
    except MalformedError as exc:
        raise CliError(f"--witness/--witnesses-required: {exc}")


def bundle_witnesses(reader: BundleReader, policy: WitnessPolicy) -> WitnessResult:
    """The policy checked on the bundle's latest checkpoint (the one every proof ends at)."""
    try:
        note = reader.read_text(CHECKPOINT)
    except (BundleError, OSError, UnicodeDecodeError) as exc:
        result = WitnessResult(policy)
        result.problems.append(f"{CHECKPOINT} cannot be read ({exc})")
        return result
    return check_note(note, policy)


# ---------------------------------------------------------------- decrypt


def _staging_dir(outdir: Path) -> Path:
    """A fresh folder beside OUTDIR; renamed to OUTDIR only when everything is written."""
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise CliError(f"{outdir} already exists and is not an empty folder; choose a new "
                       "output folder (nothing is overwritten)")
    outdir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=outdir.parent, prefix=f".{outdir.name}.partial-"))


def decrypt(args: argparse.Namespace) -> int:
    identities = load_identities(args.identity)
    if not identities:
        raise CliError(f"{args.identity} holds no AGE-SECRET-KEY-1... identity")
    reuse_freed_buffers()
    with open_bundle(args.bundle) as reader:
        staging = _staging_dir(args.output)
        try:
            code = _decrypt_into(reader, identities, args, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return code


def _decrypt_into(reader: BundleReader, identities: list[age.Identity],
                  args: argparse.Namespace, staging: Path) -> int:
    # Verified and decrypted in one pass, into the staging folder; it is renamed to OUTDIR
    # only if the whole bundle verified (else it is deleted, by the caller).
    entries, _strays = reader.chunk_entries()
    with progress_bar(len(entries), "verifying and decrypting") as tick:
        done = verify_and_decrypt(reader, identities, staging, progress=tick)
    result, outputs, problems = done.verification, done.outputs, done.problems
    if not result.ok:
        say(verification_text(result).rstrip("\n"))
        raise CliError(f"{args.bundle} did not verify: refusing to decrypt an altered bundle "
                       "(nothing was written)", EXIT_VERIFY)
    sound = sum(c.sound for c in result.chunks)
    if sound and not any(o.pieces for o in outputs):
        raise CliError(f"{args.identity} opens none of the chunks: they were sealed to other "
                       "keys (nothing was written)", EXIT_VERIFY)
    names, me = known_names(args.state, result.trust.devices if result.trust else {})
    notes = notes_and_locations(staging, outputs)
    report = build_report(result, outputs, problems, manifest=reader.read_json(MANIFEST),
                          identity=str(args.identity), outdir=str(args.output), names=names,
                          reader_contact=me, notes=notes)
    pdf = write_report(report, staging, pdf=not args.no_pdf)
    if args.output.exists():
        args.output.rmdir()  # checked empty above
    os.replace(staging, args.output)
    say(verification_text(result).rstrip("\n"))
    for out in outputs:
        gaps = f"; gaps at byte {', '.join(str(g.at_offset) for g in out.gaps)}" if out.gaps else ""
        say(f"Wrote      {args.output / out.file}: {out.size} bytes from "
            f"{chunks_word(len(out.pieces))}, SHA-256 {out.sha256}{gaps}")
    for line in terminal_lines(report["notes"]):  # made safe by build_report, and by say
        say(line)
    for problem in problems:
        say(f"ERROR      {problem.message}")
    made = "report.json, report.pdf" if pdf["file"] else "report.json"
    say(f"Report     {args.output / 'report.html'} (and {made}, SHA256SUMS)")
    if not pdf["file"]:
        say(f"No PDF     {pdf['why']}")
    return EXIT_OK if not problems else EXIT_VERIFY


# ---------------------------------------------------------------- fetch


def reader_for(state_dir: Path, encounter_id: str, rate_wait: RateWait | None = None) -> Reader:
    """Who is fetching, from the state folder: a trusted contact (`safehold contact join`)
    through the membership the encounter was released to, else the owner's device."""
    from sync.people.contact_state import MEMBERSHIPS

    if (state_dir / MEMBERSHIPS).exists():
        return _contact_reader(state_dir, encounter_id, rate_wait)
    from sync.device.account import client_for
    from sync.device.roster import ensure_roster
    from sync.device.state import StateFolder
    from sync.fetch import owner_reader

    state = StateFolder(state_dir)
    settings = state.require_registered()
    api = client_for(state, settings)
    api.rate_wait = rate_wait
    return owner_reader(api, settings.server_url, settings.server_key, settings.device_id,
                        lambda: ensure_roster(state, settings, api)[0])


def _contact_reader(state_dir: Path, encounter_id: str, rate_wait: RateWait | None) -> Reader:
    from sync.device.roster import member_roster
    from sync.fetch import contact_reader
    from sync.people.client import membership_for
    from sync.people.contact_state import ContactState

    state = ContactState(state_dir)
    membership, api = membership_for(state, encounter_id, rate_wait=rate_wait)
    # The owner's roster must begin with exactly the device keys the invitation proved.
    return contact_reader(api, membership.server_url, membership.server_key,
                          membership.contact_id, lambda: member_roster(state, membership, api))


def _checked_against_held(state_dir: Path, encounter_id: str,
                          planned: Callable[[Plan], None]) -> Callable[[Plan], None]:
    """A contact's fetch first checks the served log against every checkpoint the contact
    kept (sync/people/known_checkpoints.py) and refuses, before writing anything, a log that
    shrank or forked; the owner's device checks it against the checkpoints it verified in
    receipts (its outbox, as `device sync` does in sync/upload/rollback.py)."""
    from sync.people.contact_state import MEMBERSHIPS

    if not (state_dir / MEMBERSHIPS).exists():
        def check_owner(plan: Plan) -> None:
            from sync.device.state import StateFolder
            from sync.people.known_checkpoints import check_device_fetched

            verified = StateFolder(state_dir).outbox().checkpoints(encounter_id)
            check_device_fetched(verified, encounter_id, plan)
            planned(plan)

        return check_owner

    def check(plan: Plan) -> None:
        from sync.people.known_checkpoints import check_fetched
        from sync.upload.outbox import now_rfc3339

        check_fetched(state_dir, encounter_id, plan, now_rfc3339())
        planned(plan)

    return check


@contextmanager
def byte_progress() -> Iterator[tuple[Callable[[int], None], Callable[[Plan], None],
                                      Callable[[str], None]]]:
    """A download progress bar in bytes on a terminal (its total set once the plan is known),
    and a way to say something on stderr without breaking the bar."""
    if not sys.stderr.isatty():
        yield (lambda _n: None), (lambda _plan: None), _note
        return
    from tqdm import tqdm

    with tqdm(total=0, unit="B", unit_scale=True, desc="fetching", file=sys.stderr,
              leave=False) as bar:
        def planned(plan: Plan) -> None:
            bar.total = sum(c.size for c in plan.chunks)
            bar.refresh()

        def note(line: str) -> None:
            bar.set_postfix_str(line[:60])
            tqdm.write(f"safehold: {safe_text(line)}", file=sys.stderr)

        yield bar.update, planned, note


REFUSALS_SHOWN = 20  # a hostile log may hold a million bad leaves; name the first ones


def _note(line: str) -> None:
    """One line on stderr, escaped like everything else printed (it may quote the server)."""
    print(f"safehold: {safe_text(line)}", file=sys.stderr, flush=True)


def announce_waits(note: Callable[[str], None]) -> Callable[[float, ServerRefusal], None]:
    """Say each wait for the server once, though several downloads may be told to wait."""
    lock = threading.Lock()
    last = {"until": 0.0}

    def on_wait(seconds: float, refusal: ServerRefusal) -> None:
        until = time.monotonic() + seconds
        with lock:
            if until - last["until"] < 1.0:
                return
            last["until"] = until
        note(f"the server asks to wait ({refusal.status} {refusal.code}): waiting {seconds:g} s, "
             "then continuing")

    return on_wait


def fetch(args: argparse.Namespace) -> int:
    from sync.fetch import fetch_encounter  # the network stack: only fetch needs it

    try:
        encounter_id = check_encounter(args.encounter)
    except CryptoError:
        raise CliError(f"'{safe_text(args.encounter)}' is not an encounter id (a lowercase UUID)")
    from sync.api import RateWait

    with byte_progress() as (tick, planned, note):
        reader = reader_for(args.state, encounter_id, RateWait(announce_waits(note)))
        result = fetch_encounter(reader, encounter_id, args.output, progress=tick,
                                 on_plan=_checked_against_held(args.state, encounter_id, planned))
    say(f"Fetched    {result.chunks} chunks into {result.bundle} ({result.downloaded} "
        f"downloaded now, {result.bytes_downloaded} bytes; log of {result.tree_size} leaves)")
    if args.zip:
        archive = args.output.with_name(args.output.name + ".zip")
        try:
            zip_bundle(args.output, archive)
        except BundleRefused as exc:  # something not of the bundle's layout is in the folder
            raise CliError(f"{args.output} cannot be zipped as a bundle: {exc}", EXIT_VERIFY)
        say(f"Zipped     {archive}")
    with open_bundle(args.output) as bundle:
        verification = run_verification(bundle)
    say(verification_text(verification).rstrip("\n"))
    for refused in result.refused[:REFUSALS_SHOWN]:  # chunks fetch would not download
        _note(f"refused: {refused}")
    if len(result.refused) > REFUSALS_SHOWN:
        _note(f"refused: {len(result.refused) - REFUSALS_SHOWN} more chunks, for the same "
              "reasons (not downloaded)")
    return EXIT_OK if verification.ok and not result.refused else EXIT_VERIFY
