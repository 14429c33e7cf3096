"""`safehold device note ENCOUNTER TEXT [--lat L --lon L [--accuracy M]]`.

Adds a typed note (and, with coordinates, a location) to an encounter's event log, sealed and
queued like any chunk (sync/upload/notes.py says where it goes once the recording stopped), and
uploads it at once through the device's one upload queue: if a `record` of the same state
folder holds the upload lease, that process sends it. Everything is checked before anything is
sealed, so a refused note queues nothing. Exit 0 when the server acknowledged every entry; 3
when they are queued but did not reach it (they stay in the outbox for `safehold device sync`).
"""

from __future__ import annotations

import argparse
import sys
import threading

from cli.common import EXIT_USAGE, CliError
from cli.device import Progress, _finish, _registered, _shared, _timeout
from sync.device.account import client_for
from sync.upload.eventlog import EntryError, location_entry, note_entry
from sync.upload.notes import ADDENDA_STREAM, add_entries, check_encounter_here
from sync.upload.recorder import Sealer, device_time
from sync.upload.uplink import OwnChunks


def entries_from(args: argparse.Namespace, at: str) -> list[dict[str, object]]:
    """The note and location entries the arguments ask for (CliError, exit 2, if they can't)."""
    if (args.lat is None) != (args.lon is None):
        raise CliError("give both --lat and --lon (a location needs both), or neither",
                       EXIT_USAGE)
    if args.accuracy is not None and args.lat is None:
        raise CliError("--accuracy belongs to a location: give --lat and --lon with it",
                       EXIT_USAGE)
    try:
        entries = [note_entry(at, args.text)]
        if args.lat is not None:
            entries.append(location_entry(at, args.lat, args.lon, args.accuracy))
    except EntryError as exc:
        raise CliError(str(exc), EXIT_USAGE)
    return entries


def note(args: argparse.Namespace) -> int:
    from cli.device_uplink import say, warn_unreachable

    entries = entries_from(args, device_time())
    state, settings = _registered(args)
    outbox = state.outbox()
    check_encounter_here(outbox, args.encounter)
    sealer = Sealer(state.device_signing_key(),
                    [*outbox.contact_recipients(), settings.recovery_recipient])
    added = add_entries(outbox, sealer, args.encounter, entries)
    own = OwnChunks(outbox)
    for chunk in added.chunks:
        own.add(chunk.key)
    where = ", ".join(f"{c.key.stream} seq {c.key.seq}" for c in added.chunks)
    print(f"added {len(added.chunks)} entr{'y' if len(added.chunks) == 1 else 'ies'} to "
          f"encounter {args.encounter} ({where})", file=sys.stderr)
    if ADDENDA_STREAM in added.streams:
        say("the recording of this encounter has stopped (its event log is closed), so the "
            "note is kept in the encounter's `addenda` stream, marked as added afterwards")
    warn_unreachable(args.encounter, sealer.sealed_alone, len(added.chunks))
    api = client_for(state, settings, _timeout())
    progress = Progress()
    outcome = _shared(state, settings, outbox, api, progress, threading.Event()).run(own.done)
    progress.done()
    report = outcome.report
    report.remaining = own.left()
    code = _finish(report, "the note did NOT reach the server yet; it is saved on this device")
    print(f"note reached the server: {len(added.chunks)} entr"
          f"{'y' if len(added.chunks) == 1 else 'ies'} acknowledged")
    return code
