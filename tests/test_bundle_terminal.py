"""Strings from a bundle reach the terminal and the report only escaped, and a device is named
only by what its key says.

The manifest is not signed: a device id holding a newline and ANSI codes must not print a fake
"OK" line, a bidi override must not reorder what a reader sees, HTML must not reach the page,
and a manifest must not be able to call a genuine key "Officer Smith's phone".
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundlekit import Scenario, run_cli, scenario

from crypto.signing import key_fingerprint
from sync.safetext import safe_text

FAKE_OK = "\x1b[2K\rResult     OK: nothing was altered\x1b[8m"
BIDI = "\u202e\u2066"


@pytest.fixture(scope="module")
def sound(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("terminal") / "bundle"
    return scenario(root, {"log": [b'{"event": "start"}'], "audio": os.urandom(3 * 4096)})


def edited(sound: Scenario, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(sound.bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def no_raw_controls(text: str) -> None:
    """Nothing a terminal would act on: only printable characters, and our own newlines."""
    assert all(c.isprintable() or c == "\n" for c in text), repr(text)


def test_the_escaping_makes_every_control_visible() -> None:
    assert safe_text("phone-1") == "phone-1"
    assert safe_text("a\nb\x1b[31mc\x9bd\x7f") == "a\\x0ab\\x1b[31mc\\x9bd\\x7f"
    assert safe_text("evil\u202etxt.exe\u2066\u2069") == "evil\\u202etxt.exe\\u2066\\u2069"
    assert safe_text("\u2028\U000e0001 \u00a0é") == "\\u2028\\U000e0001 \\xa0é"


def test_a_device_id_with_a_newline_and_escape_codes_prints_no_fake_ok(
        sound: Scenario, tmp_path: Path) -> None:
    bundle = edited(sound, tmp_path, lambda m: m["devices"][0].update(device_id=f"x\n{FAKE_OK}"))
    result = run_cli("verify", bundle)
    assert result.returncode == 1, result.stdout + result.stderr
    no_raw_controls(result.stdout)
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("Result")] == [
        "Result     FAILED: 1 errors; the bundle was altered, forged or is inconsistent"]
    # The hostile id is shown once, escaped, inside the error that names it.
    shown = "x\\x0a\\x1b[2K\\x0dResult     OK: nothing was altered\\x1b[8m"
    assert any(line.startswith("ERROR") and shown in line for line in lines), result.stdout
    # The device line names the device by its key, not by the manifest's text.
    assert (f"Device     {sound.device.device_id}  key fingerprint "
            f"{key_fingerprint(sound.device.verifier)}") in lines


def test_a_bidi_override_in_the_server_name_is_shown_escaped(sound: Scenario,
                                                             tmp_path: Path) -> None:
    bundle = edited(sound, tmp_path, lambda m: m["server"].update(name=f"evil{BIDI}gro.elpmaxe"))
    result = run_cli("verify", bundle)
    assert result.returncode == 1
    no_raw_controls(result.stdout)
    assert "Server     evil\\u202e\\u2066gro.elpmaxe  key fingerprint" in result.stdout


def test_a_forged_label_for_a_genuine_key_fails(sound: Scenario, tmp_path: Path) -> None:
    bundle = edited(sound, tmp_path,
                    lambda m: m["devices"][0].update(device_id="Officer Smith's phone"))
    result = run_cli("verify", bundle)
    assert result.returncode == 1, result.stdout
    fingerprint = key_fingerprint(sound.device.verifier)
    assert (f"ERROR      manifest.json calls the device key with fingerprint {fingerprint} "
            f"'Officer Smith's phone', but the key names itself "
            f"device-{sound.device.device_id}: the name in the manifest is not tied to the key"
            ) in result.stdout
    assert not any(line.startswith("Device") and "Officer" in line
                   for line in result.stdout.splitlines())
    # Every chunk still checks out against the key: the only error is the label.
    assert "Result     FAILED: 1 errors" in result.stdout


def test_a_free_text_label_is_unverified_and_stays_out_of_the_report(
        sound: Scenario, tmp_path: Path) -> None:
    hostile = f"Officer Smith's phone{BIDI}\x1b[32m<script>alert(1)</script>"
    bundle = edited(sound, tmp_path, lambda m: (
        m["devices"][0].update(label=hostile),
        m.update(fetched_by={"kind": "contact\x1b]0;pwned\x07", "id": "<b>x</b>"},
                 encounter={"started_at": f"2026{BIDI}\n"})))
    identity = tmp_path / "id.key"
    identity.write_text(sound.identity + "\n")
    result = run_cli("decrypt", bundle, "-i", identity, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    no_raw_controls(result.stdout)
    assert ("warning    manifest.json: device " f"{sound.device.device_id} carries the label "
            "'Officer Smith's phone\\u202e\\u2066\\x1b[32m<script>alert(1)</script>', which no "
            "key signed; it is not shown as the device's name") in result.stdout
    report_text = (tmp_path / "out/report.json").read_text()
    report = json.loads(report_text)
    assert report["devices"] == [{"device_id": sound.device.device_id,
                                  "key": sound.device.verifier,
                                  "fingerprint": key_fingerprint(sound.device.verifier),
                                  "chunks_signed": 4}]
    # Unsigned information with a strict format is checked, not merely escaped: malformed,
    # it is left out, and verify said so.
    assert report["bundle"]["fetched_by"] is None
    assert report["encounter"] == {"started_at": None, "created_at": None, "log_origin": None}
    for field_name in ("encounter.started_at", "fetched_by"):
        assert (f"warning    manifest.json: {field_name} is not well-formed; the report leaves "
                "it out") in result.stdout
    strings: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                collect(k)
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)

    collect(report)
    for text in strings:
        assert text.isprintable(), text
    html = (tmp_path / "out/report.html").read_text()
    no_raw_controls(html)
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "\\u202e" in html
