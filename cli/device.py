"""`safehold device ...`: the recording phone's side, on top of sync/.

Tuning by environment (documented in docs/protocol.md, section client):
  SAFEHOLD_HTTP_TIMEOUT   seconds to wait for a server answer (default 30)
  SAFEHOLD_SYNC_PATIENCE  seconds without progress before giving up on a dead network (default 30)
  SAFEHOLD_SYNC_WORKERS   uploads at once (default 4)

`record` and `sync` share one upload queue per state folder (sync/upload/uplink.py); what they say
about the network and the contacts is in cli/device_uplink.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import BinaryIO

from cli.common import EXIT_NETWORK, EXIT_OK, CliError
from cli.device_witnesses import require_witnesses
from sync.api import ApiClient
from sync.device.account import client_for
from sync.device.account import register as register_device
from sync.device.feed import follow_changes
from sync.device.state import Settings, StateFolder
from sync.errors import NetworkError, ServerRefusal, SyncError, UntrustedServer
from sync.upload import findings
from sync.upload.outbox import Outbox, SealedChunk
from sync.upload.receipts import ReceiptVerifier
from sync.upload.recorder import Recorder, RecordOptions, Sealer
from sync.upload.rollback import RollbackDetected, check_logs
from sync.upload.uplink import Outcome, OwnChunks, SharedUpload
from sync.upload.uploader import SyncReport, Uploader


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise CliError(f"{name} must be a number of seconds, got {value!r}")


def _timeout() -> tuple[float, float]:
    read = _env_float("SAFEHOLD_HTTP_TIMEOUT", 30.0)
    return (min(5.0, read), read)


class Progress:
    """One self-rewriting status line on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.recorded = 0
        self.report = SyncReport()
        self._lock = threading.Lock()

    def chunk_recorded(self) -> None:
        self.recorded += 1
        self.show()

    def uploaded(self, report: SyncReport) -> None:
        self.report = report
        self.show()

    def show(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            line = f"sealed {self.recorded}  sent {self.report.acknowledged}"
            if self.report.last_network_error and self.report.retries:
                line += f"  retries {self.report.retries}"
            sys.stderr.write("\r" + line.ljust(60))
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _registered(args: argparse.Namespace) -> tuple[StateFolder, Settings]:
    state = StateFolder(Path(args.state))
    return state, state.require_registered()


def _uploader(state: StateFolder, settings: Settings, outbox: Outbox, api: ApiClient,
              progress: Progress) -> Uploader:
    verifier = ReceiptVerifier(outbox, settings.server_key, settings.server_name,
                               api.consistency)
    workers = int(_env_float("SAFEHOLD_SYNC_WORKERS", 4))
    return Uploader(outbox, api, verifier, settings.server_key, workers=workers,
                    patience=_env_float("SAFEHOLD_SYNC_PATIENCE", 30.0),
                    on_progress=progress.uploaded)


def _check_logs(settings: Settings, outbox: Outbox, api: ApiClient) -> list[int]:
    """Rollback/fork/dropped-chunk check before uploading (sync/upload/rollback.py): findings
    are recorded on the device and the affected bodies queued again; their ids."""
    return check_logs(outbox, settings.server_key, settings.server_name,
                      api.latest_checkpoint, api.consistency, api.encounter)


def _tampering(outbox: Outbox, found: list[int]) -> None:
    """After the upload pass: settle what was sent again, and end in exit 1 if anything was
    found now (the finding, with how far the re-upload got, stays on the device)."""
    findings.settle(outbox)
    if found:
        raise RollbackDetected(findings.listed(outbox, found))


def _shared(state: StateFolder, settings: Settings, outbox: Outbox, api: ApiClient,
            progress: Progress, recording: threading.Event) -> SharedUpload:
    from cli.device_uplink import WaitingNotice, patience

    return SharedUpload(state.path, outbox,
                        lambda: _uploader(state, settings, outbox, api, progress), patience(),
                        WaitingNotice(outbox, recording.is_set))


def _finish(report: SyncReport, what: str) -> int:
    """Exit 0 only when nothing is left; otherwise one line saying why and what to do."""
    if report.fatal is not None:
        raise report.fatal
    if report.untrusted:
        key, message = next(iter(report.untrusted.items()))
        raise UntrustedServer(f"{len(report.untrusted)} chunk(s) NOT acknowledged because the "
                              f"server's receipt did not verify (first: {key}): {message}")
    if report.refused:
        key, message = next(iter(report.refused.items()))
        raise CliError(f"the server refused {len(report.refused)} chunk(s) (first: {key}): "
                       f"{message}; they stay in the outbox", EXIT_NETWORK)
    if report.remaining:
        raise NetworkError(f"{what}: {report.remaining} chunk(s) still queued, safe in the "
                           f"outbox; run `safehold device sync` when the network is back "
                           f"(last error: {report.last_network_error})")
    return EXIT_OK


def register(args: argparse.Namespace) -> int:
    state = StateFolder(Path(args.state))
    try:
        settings = register_device(state, args.server, timeout=_timeout())
    except SyncError as exc:
        if state.load_settings() is None:
            raise  # nothing was made
        raise CliError(f"{exc}; the new keys are kept in {state.path}: run the same command "
                       "again to finish registering", exc.exit_code)
    print(f"registered device {settings.device_id} (account {settings.account_id}) "
          f"with {settings.server_url}")
    print(f"server key fingerprint: {settings.server_fingerprint} "
          "(compare it with the one your server's operator publishes)")
    return EXIT_OK


def _open_input(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    path = Path(name)
    if path.is_dir():
        raise CliError(f"{name} is a folder, not a recording")
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def _known_encounter(outbox: Outbox, encounter: str | None) -> None:
    """`--encounter` with an id this device does not know starts that encounter, as phones do
    (ids are made on the phone, so two recorders can share one from the start) - but never
    silently: a typo'd id is said out loud, with how to check it."""
    if encounter is not None and outbox.encounter(encounter) is None:
        print(f"safehold: encounter {encounter} is new to this device (not begun here, nor "
              "seen by `safehold device sync`): starting it. If you meant to add to an "
              "encounter begun earlier, check the id `safehold device record` printed.",
              file=sys.stderr, flush=True)


def record(args: argparse.Namespace) -> int:
    from cli.device_uplink import warn_unreachable

    state, settings = _registered(args)
    outbox = state.outbox()
    _known_encounter(outbox, args.encounter)
    recipients = [*outbox.contact_recipients(), settings.recovery_recipient]
    sealer = Sealer(state.device_signing_key(), recipients)
    options = RecordOptions(stream=args.stream, chunk_bytes=args.chunk_bytes,
                            encounter=args.encounter, rate=args.rate)
    progress = Progress()
    own = OwnChunks(outbox)

    def recorded(chunk: SealedChunk) -> None:
        own.add(chunk.key)
        progress.chunk_recorded()

    recorder = Recorder(outbox, sealer, options, on_chunk=recorded)
    source = _open_input(args.file)
    try:
        encounter = recorder.begin()
        print(encounter, flush=True)
        if not args.offline:
            code = _record_and_upload(state, settings, outbox, recorder, source, progress, own)
            require_witnesses(outbox, client_for(state, settings, _timeout()), settings,
                              [encounter])
            return code
        summary = recorder.run(source)
        progress.done()
        print(f"queued {summary.chunks} chunk(s) and {summary.log_entries} log entries "
              "offline; run `safehold device sync` to upload", file=sys.stderr)
        return EXIT_OK
    finally:
        warn_unreachable(recorder.encounter, sealer.sealed_alone, own.total)
        if source is not sys.stdin.buffer:
            source.close()


def _record_and_upload(state: StateFolder, settings: Settings, outbox: Outbox,
                       recorder: Recorder, source: BinaryIO, progress: Progress,
                       own: OwnChunks) -> int:
    """Record on this thread; upload (or wait for the process that uploads) on another, until
    this recording's own chunks are acknowledged or patience runs out."""
    api = client_for(state, settings, _timeout())
    try:  # never in the way of a recording: offline, the next sync checks
        tampering, untrusted = _check_logs(settings, outbox, api), None
    except (NetworkError, ServerRefusal):
        tampering, untrusted = [], None
    except UntrustedServer as exc:
        tampering, untrusted = [], exc
    recording = threading.Event()
    recording.set()
    shared = _shared(state, settings, outbox, api, progress, recording)

    def on_chunk(chunk: SealedChunk) -> None:
        own.add(chunk.key)
        progress.chunk_recorded()
        shared.wake()

    recorder.on_chunk = on_chunk
    shared.wake()  # the start entry is already queued
    outcomes: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(shared.run(own.done,
                                                                        recording.is_set)),
                              name="uploader", daemon=True)
    worker.start()
    threading.Thread(target=_pin_contacts, args=(state, settings, outbox, api, recorder),
                     name="contacts", daemon=True).start()
    try:
        summary = recorder.run(source)
    finally:
        recording.clear()
        shared.wake()
        worker.join()
        progress.done()
    report = outcomes[0].report if outcomes else shared.report
    report.remaining = own.left()
    print(f"recorded {summary.chunks} {summary.stream} chunk(s) and {summary.log_entries} log "
          f"entries; {own.total - report.remaining} of {own.total} chunk(s) acknowledged",
          file=sys.stderr)
    _tampering(outbox, tampering)  # the recording is saved and sent; tampering is exit 1
    if untrusted is not None:
        raise untrusted
    return _finish(report, "recording saved")


def _pin_contacts(state: StateFolder, settings: Settings, outbox: Outbox, api: ApiClient,
                  recorder: Recorder) -> None:
    """Contacts who joined since are pinned and sealed to from the next chunk on."""
    from cli.device_uplink import check_contacts

    if check_contacts(state, api).pinned:
        recorder.sealer.recipients = [*outbox.contact_recipients(), settings.recovery_recipient]


def sync(args: argparse.Namespace) -> int:
    from cli.device_uplink import check_contacts

    state, settings = _registered(args)
    outbox = state.outbox()
    api = client_for(state, settings, _timeout())
    progress = Progress()
    tampering = _check_logs(settings, outbox, api)
    uploading = outbox.encounters_with_queued()
    own = OwnChunks.queued_now(outbox)
    outcome = _shared(state, settings, outbox, api, progress, threading.Event()).run(own.done)
    progress.done()
    report = outcome.report
    report.remaining = own.left()
    _tampering(outbox, tampering)  # re-sent what it could; tampering is never swallowed
    code = _finish(report, "sync incomplete")
    check_contacts(state, api)
    from cli.device_share import grant_shares  # chunks recorded since a share reach its reader

    try:
        grant_shares(state, settings, api, refresh=False)
    except SyncError as exc:  # the upload is done; re-wrapping waits for the next run
        print(f"safehold: shared encounters were not re-wrapped now ({exc}); run `safehold "
              "device sync` again", file=sys.stderr)
    require_witnesses(outbox, api, settings, uploading)
    feed = follow_changes(outbox, api)
    for encounter_id in feed.new_encounters:
        print(f"encounter {encounter_id} (recorded on another device)")
    from sync.device.link import roster_upkeep  # the signed roster and contact set
    from sync.safetext import safe_text

    added, outside = roster_upkeep(state, settings, api)
    for device_id in added:
        print(f"added device {device_id} to the roster")
    for device_id in outside:
        print(f"safehold: the server lists device {safe_text(device_id)} in your account, but "
              "no device of yours signed it into the roster: nothing it uploads is trusted. If "
              "it is not a link you started, the server's operator put it there",
              file=sys.stderr)
    print(f"sent {own.total} chunk(s) ({report.already_held} were already on the server); "
          "nothing left to upload", file=sys.stderr)
    recorded = findings.listed(outbox)
    if recorded:  # settled, but never forgotten
        print(f"safehold: {len(recorded)} tampering finding(s) by this server are recorded on "
              "this device: `safehold device status` lists them", file=sys.stderr)
    return code


# Trusted contacts and release marks live in cli/device_contacts.py (issue 4).


def invite(args: argparse.Namespace) -> int:
    from cli.device_contacts import invite as make_invitation

    return make_invitation(args)


def contacts(args: argparse.Namespace) -> int:
    from cli.device_contacts import contacts as show_contacts

    return show_contacts(args)


def alert(args: argparse.Namespace) -> int:
    from cli.device_contacts import mark

    return mark(args, "alert")


def safe(args: argparse.Namespace) -> int:
    from cli.device_contacts import mark

    return mark(args, "safe")
