"""`verify`: the bundle's device roster decides which device keys are trusted.

The manifest is not signed, so its device list is only a claim. The roster (manifest.json
`"roster"`: the account's signed statements, genesis first) is checked as a chain: the genesis
signed by the device it names, every addition signed by a device already in it, each naming its
predecessor's hash. Only roster devices are trusted; a manifest device outside the roster is an
error, and so is every chunk it signed. `fetch` has already checked that the roster starts from
the genesis the owner's device pinned (or the device keys a contact's invitation proved);
verify prints the genesis hash so anyone can compare it out of band.
"""

from __future__ import annotations

from typing import Any

from crypto.errors import CryptoError
from crypto.roster import Roster, RosterError, open_roster
from crypto.signing import key_fingerprint, split_note
from sync.bundle.files import MANIFEST
from sync.safetext import safe_text
from sync.verifying.findings import ERROR, Problem

ROSTER_FIELD = "roster"


def _error(problems: list[Problem], check: str, message: str) -> None:
    problems.append(Problem(ERROR, check, message, MANIFEST))


def load_roster(notes: Any, server_name: str, problems: list[Problem]) -> Roster | None:
    """The bundle's verified roster, or None (with an error) when it is absent or broken."""
    if notes is None:
        _error(problems, "roster", f"{MANIFEST} carries no device roster, so no device key can "
               "be trusted (fetch it again with a current safehold)")
        return None
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        _error(problems, "roster", f"{MANIFEST}: the device roster is not a list of statements")
        return None
    try:
        return open_roster(notes, server_name)
    except RosterError as exc:
        _error(problems, "roster", f"{MANIFEST}: the device roster does not verify: "
               f"{safe_text(str(exc))}")
        return None


def trusted_devices(roster: Roster | None, devices: dict[str, str], prints: dict[str, str],
                    problems: list[Problem]) -> tuple[dict[str, str], dict[str, str]]:
    """The manifest's devices that the roster holds (device id -> key, and fingerprints)."""
    in_roster = roster.device_ids() if roster is not None else {}
    for device_id, key in devices.items():
        if roster is not None and in_roster.get(device_id) != key:
            _error(problems, "roster_device", f"{MANIFEST} lists device {device_id} "
                   f"(fingerprint {prints.get(device_id, '?')}), which is NOT in the owner's "
                   "device roster: nothing it signed is trusted")
    trusted = {d: k for d, k in in_roster.items()}
    return trusted, {d: key_fingerprint(k) for d, k in trusted.items()}


def forged_message(note: str, trusted: dict[str, str], exc: Exception) -> str:
    """Why a descriptor's signature is refused: altered (a roster device's signature no longer
    verifies) or forged (signed only by devices outside the roster, named)."""
    try:
        names = sorted({s.name for s in split_note(note)[1]})
    except CryptoError:
        names = []
    known = {f"device-{device_id}" for device_id in trusted}
    if not names or known & set(names):
        return f"not signed by a device key listed in {MANIFEST}: {exc} (altered or forged)"
    shown = ", ".join(safe_text(n) for n in names)
    return (f"FORGED: signed by {shown}, which is not in the owner's device roster: no device "
            "of the owner made this chunk")

