"""web/: the JS unit tests (node's test runner, fed docs/protocol.md's worked examples like the
Python tests) pass, and the committed build in web/dist is exactly what a fresh build makes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests
from helpers import ROOT, ServerProcess

WEB = ROOT / "web"


def node() -> str:
    found = shutil.which("node")
    if not found or not (WEB / "node_modules").is_dir():
        pytest.fail("web/ needs node and its packages: apt-get install nodejs npm; "
                    "cd web && npm ci")
    return found


def test_js_unit_tests_pass() -> None:
    tests = sorted(str(p.relative_to(WEB)) for p in (WEB / "test").glob("*.test.mjs"))
    assert tests
    done = subprocess.run([node(), "--test", *tests], cwd=WEB, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def test_committed_build_matches_a_fresh_build() -> None:
    done = subprocess.run([node(), "build.mjs", "--check"], cwd=WEB, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_server_serves_the_page_and_its_built_files_as_they_are(
        live_server: ServerProcess) -> None:
    url = live_server.url
    page = requests.get(f"{url}/contact", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.content == (WEB / "dist" / "contact.html").read_bytes()
    script = requests.get(f"{url}/web/contact.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert script.content == (WEB / "dist" / "contact.js").read_bytes()
    for outside in ("/web/../server/app.py", "/web/%2e%2e/pyproject.toml", "/web/nothing.js"):
        refused = requests.get(url + outside, timeout=10)
        assert refused.status_code == 404
        assert b"[project]" not in refused.content
