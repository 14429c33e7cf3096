"""`safehold verify` and the bundle's device roster, offline (bundles built by tests/bundlekit.py).

The roster in manifest.json decides which device keys are trusted: a bundle without one, with a
broken one, or one a forger extended with a device of their own is refused, naming the
statement; a second device properly signed in is trusted; chunks signed by a key outside the
roster are named as forged; decrypt then writes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bundlekit import ROSTER_ACCOUNT, SERVER_NAME, Device, Scenario, run_cli, scenario

from crypto.roster import RosterStatement, sign_statement, statement_hash
from crypto.signing import sign_note, verifier_key


@pytest.fixture
def sound(tmp_path: Path) -> Scenario:
    return scenario(tmp_path / "bundle", {"audio": os.urandom(3 * 4096)})


def manifest(bundle: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((bundle / "manifest.json").read_text())


def rewrite(bundle: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = manifest(bundle)
    change(data)
    (bundle / "manifest.json").write_text(json.dumps(data))


def verify(bundle: Path) -> tuple[int, str]:
    done = run_cli("verify", bundle)
    return done.returncode, done.stdout + done.stderr


def addition(notes: list[str], new: Device, signer_key: str) -> str:
    statement = RosterStatement(SERVER_NAME, ROSTER_ACCOUNT, len(notes),
                                statement_hash(notes[-1]), new.verifier, None)
    return sign_statement(statement, signer_key)


def test_a_sound_bundle_names_its_roster(sound: Scenario) -> None:
    code, out = verify(sound.bundle)
    genesis = statement_hash(manifest(sound.bundle)["roster"][0])
    assert code == 0, out
    assert f"Roster     1 device(s) signed in from genesis {genesis}" in out


def test_a_bundle_without_a_roster_trusts_no_device(sound: Scenario, tmp_path: Path) -> None:
    rewrite(sound.bundle, lambda m: m.pop("roster"))
    code, out = verify(sound.bundle)
    assert code == 1 and "carries no device roster" in out, out
    decrypted = tmp_path / "out"
    identity = tmp_path / "id.key"
    identity.write_text(sound.identity + "\n")
    done = run_cli("decrypt", sound.bundle, "-i", identity, "-o", decrypted)
    assert done.returncode == 1 and not decrypted.exists(), done.stdout + done.stderr


def test_a_forger_cannot_extend_the_roster(sound: Scenario) -> None:
    """The forger appends its own device, signed by itself, and lists it in the manifest."""
    forger = Device()
    notes = manifest(sound.bundle)["roster"]

    def extend(m: dict) -> None:  # type: ignore[type-arg]
        m["roster"] = [*notes, addition(notes, forger, forger.signing_key)]
        m["devices"].append({"device_id": forger.device_id, "device_key": forger.verifier})

    rewrite(sound.bundle, extend)
    code, out = verify(sound.bundle)
    assert code == 1, out
    assert "the device roster does not verify: roster statement 1 (adding device " \
           f"{forger.device_id}) is not signed by a device already in the roster" in out


def test_a_device_the_phone_signed_in_is_trusted_and_its_forgeries_named(
        sound: Scenario) -> None:
    tablet = Device()
    notes = manifest(sound.bundle)["roster"]
    rewrite(sound.bundle, lambda m: m.update(
        roster=[*notes, addition(notes, tablet, sound.device.signing_key)],
        devices=[*m["devices"], {"device_id": tablet.device_id,
                                 "device_key": verifier_key(tablet.signing_key)}]))
    code, out = verify(sound.bundle)
    assert code == 0, out
    assert "Roster     2 device(s)" in out
    # Now a chunk re-signed by a key outside the roster (its leaf too: the log no longer
    # matches the server's checkpoint, and the descriptor is named as forged).
    outsider = Device()
    path = sound.bundle / "chunks/audio/00000001.descriptor"
    text = path.read_text().split("\n\n")[0] + "\n"
    path.write_text(sign_note(text, outsider.signing_key))
    code, out = verify(sound.bundle)
    assert code == 1, out
    assert (f"chunks/audio/00000001.descriptor: FORGED: signed by device-{outsider.device_id}, "
            "which is not in the owner's device roster") in out
