"""GET /docs: the interactive API page (Swagger UI) works offline, from this server's own files.

Against the real server over HTTP, and in Debian's headless Chromium with every host name but
loopback unresolvable: the page draws every endpoint and, opened on one, its request and
response bodies. Screenshots are kept in the test's tmp folder to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
from browserkit import colours, dom, hex_rgb, screenshot

from tests.helpers import ServerProcess


def test_docs_page_and_its_files_come_only_from_our_own_origin(
        live_server: ServerProcess) -> None:
    page = requests.get(live_server.url + "/docs", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= \
        set(references)
    for reference in references:
        url = urljoin(live_server.url + "/docs", reference)
        assert urlsplit(url).netloc == live_server.name, reference
        got = requests.get(url, timeout=10)
        assert got.status_code == 200, reference
        assert got.headers["Content-Type"].split(";")[0] in ("text/css", "text/javascript")
    assert '"url": "/openapi.json"' in page.text or 'url: "/openapi.json"' in page.text
    # Swagger UI's one outside call, its online validator, is turned off.
    assert '"validatorUrl": null' in page.text
    assert "https://" not in page.text and "http://" not in page.text
    missing = requests.get(live_server.url + "/docs/assets/%2e%2e%2fserver.key", timeout=10)
    assert missing.status_code == 404
    other = requests.get(live_server.url + "/docs/assets/index.html", timeout=10)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_docs_page_in_chromium_offline_shows_every_endpoint_and_its_bodies(
        live_server: ServerProcess, tmp_path: Path) -> None:
    spec = requests.get(live_server.url + "/openapi.json", timeout=10).json()
    drawn = dom(live_server.url + "/docs", wait_ms=10_000)
    paths = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', drawn))
    assert paths == set(spec["paths"]), set(spec["paths"]) ^ paths
    assert "Upload one chunk" in drawn

    opened = dom(live_server.url + "/docs#/accounts/post_v1_accounts", wait_ms=10_000)
    assert "Request body" in opened and "Responses" in opened
    assert '"recovery_recipient"' in opened.replace("&quot;", '"')  # the request body's fields
    shot = screenshot(live_server.url + "/docs", tmp_path / "docs.png", height=1000,
                      wait_ms=10_000)
    seen = colours(shot)
    # Swagger UI drew its coloured method badges (GET blue, POST green): its script and
    # style sheet loaded with no network beyond this server.
    for badge in ("#61affe", "#49cc90"):
        assert seen[hex_rgb(badge)] > 500, badge
