"""The dependency direction of DESIGN.md, enforced on every import statement in the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"crypto", "schemas", "server", "sync", "cli", "witness"}
# For each package: which of our packages it may import (itself always allowed).
ALLOWED = {
    "crypto": set(),
    "schemas": set(),
    "server": {"crypto", "schemas"},
    "sync": {"crypto", "schemas"},
    "cli": {"crypto", "schemas", "sync", "server", "witness"},
    # run by a third party: shares only the byte formats with the server it watches
    "witness": {"crypto", "schemas"},
}
# crypto/ and schemas/ are pure; these are the only third-party roots they may use at run time.
# spake2 (pure computation, no I/O) is crypto/pake.py's PAKE, as the issue asks (issue 11).
THIRD_PARTY = {"crypto": {"cryptography", "spake2"}, "schemas": {"marshmallow"}}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_dependency_direction(package: str) -> None:
    offences = []
    for path in package_files(package):
        crossing = (imported_roots(path) & OURS) - ALLOWED[package] - {package}
        if crossing:
            offences.append(f"{path.relative_to(ROOT)} imports {sorted(crossing)}")
    assert not offences, "dependency direction broken:\n" + "\n".join(offences)


@pytest.mark.parametrize("package", sorted(THIRD_PARTY))
def test_pure_packages_use_only_their_one_library(package: str) -> None:
    import sys

    stdlib = set(sys.stdlib_module_names)
    allowed = THIRD_PARTY[package] | stdlib | {package, "__future__"}
    offences = []
    for path in package_files(package):
        extra = imported_roots(path) - allowed
        if extra:
            offences.append(f"{path.relative_to(ROOT)} imports {sorted(extra)}")
    assert not offences, "\n".join(offences)


def test_crypto_does_no_io() -> None:
    """crypto/ is bytes in, bytes out: no files, sockets or processes."""
    forbidden = {"socket", "subprocess", "shutil", "requests", "urllib", "http", "pathlib", "io"}
    offences = []
    for path in package_files("crypto"):
        used = imported_roots(path) & forbidden
        tree = ast.parse(path.read_text())
        calls_open = any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
            for n in ast.walk(tree)
        )
        if used or calls_open:
            offences.append(f"{path.relative_to(ROOT)}: {sorted(used) or 'open()'}")
    assert not offences, "\n".join(offences)


def test_the_checker_sees_a_crossing(tmp_path: Path) -> None:
    """Guard against a checker that passes vacuously."""
    bad = tmp_path / "bad.py"
    bad.write_text("import server.app\nfrom sync import outbox\nimport os\n")
    assert imported_roots(bad) == {"server", "sync", "os"}
    assert package_files("crypto"), "crypto/ has no files: the layering test would be empty"


def declared_runtime_distributions() -> set[str]:
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalised(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0])
            for spec in project["dependencies"]}


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-")


def test_every_library_the_program_imports_is_a_declared_dependency() -> None:
    """`scripts/serve` installs only the runtime dependencies: an import of anything else (even
    one the test extras happen to pull in) would fail for a user, not in the test suite."""
    import importlib.metadata
    import sys

    distributions = importlib.metadata.packages_distributions()
    declared = declared_runtime_distributions()
    offences = []
    for package in sorted(ALLOWED):
        for path in package_files(package):
            for root in sorted(imported_roots(path) - OURS - set(sys.stdlib_module_names)):
                names = {_normalised(name) for name in distributions.get(root, [root])}
                if not names & declared:
                    offences.append(f"{path.relative_to(ROOT)} imports {root} ({sorted(names)})")
    assert not offences, "not in [project] dependencies:\n" + "\n".join(offences)
