"""What every user of the `safehold` command meets first: --help, --version, and a closed pipe."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.bundlekit import ROOT, run_cli


def test_version_is_the_installed_package_version() -> None:
    done = run_cli("--version")
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert done.returncode == 0
    assert done.stdout.strip() == f"safehold {expected}"


def test_help_says_what_the_command_is_for_and_its_exit_codes() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    assert "Entry point" not in done.stdout
    assert "record encounters" in done.stdout
    for code in ("0 success", "1 verification", "2 usage", "3 network"):
        assert code in done.stdout


def test_a_closed_pipe_is_quiet_and_not_reported_as_success(tmp_path: Path) -> None:
    # `safehold keygen -o k | head -0`: the reader is gone before we write.
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "keygen", "-o",
                             str(tmp_path / "k.key")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141  # 128 + SIGPIPE, as a shell reports it; never 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert (tmp_path / "k.key").read_text().count("AGE-SECRET-KEY-1") == 1


def test_every_option_and_argument_explains_itself() -> None:
    from cli.main import build_parser

    def walk(parser: object) -> list[str]:
        missing = []
        for action in parser._actions:  # type: ignore[attr-defined]
            if action.dest in ("help", "version"):
                continue
            if action.choices and isinstance(action.choices, dict):  # subcommands
                for name, sub in action.choices.items():
                    missing += [f"{name} {m}" for m in walk(sub)]
            elif not action.help:
                missing.append("/".join(action.option_strings) or action.dest)
        return missing

    assert walk(build_parser()) == []


def test_verify_and_decrypt_help_state_their_exit_codes() -> None:
    for command in ("verify", "decrypt"):
        text = run_cli(command, "--help").stdout
        assert "exit codes: 0" in text and " 1 " in text and " 2 usage" in text
