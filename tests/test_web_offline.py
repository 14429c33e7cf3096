"""The recorder as an installable web app that opens offline once loaded (issue 15).

The manifest and the service worker are served with the right types and headers; in Debian's
Chromium the page /record registers the worker, which stores the page and every built file it
names (and the manifest's icons); after the network is gone (the browser set offline AND the
server stopped, so nothing can come from the network) /record loads again and its code runs.
The API is never answered from the worker's store, and the worker may not take another scope.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import ServerProcess
from playwright.sync_api import Browser, expect
from webkit import launch, new_page

STORED = """async () => {
  await navigator.serviceWorker.ready;  // the page registered it (src/record/install.js)
  const cache = await caches.open('safehold-record-v1');
  return (await cache.keys()).map((r) => new URL(r.url).pathname).sort();
}"""
ELSEWHERE = """() => navigator.serviceWorker.register('/web/record-sw.js', { scope: '/contact' })
  .then(() => 'registered', (e) => e.name)"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own: the offline test stops it."""
    server = ServerProcess(tmp_path_factory.mktemp("offline") / "data").start()
    yield server
    server.stop()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_manifest_worker_and_icons_are_served_as_an_installable_app(live_server) -> None:
    worker = requests.get(f"{live_server.url}/web/record-sw.js", timeout=10)
    assert worker.status_code == 200
    assert worker.headers["Content-Type"].startswith("text/javascript")
    assert worker.headers["Service-Worker-Allowed"] == "/record"
    assert "worker-src 'self'" in worker.headers["Content-Security-Policy"]
    manifest = requests.get(f"{live_server.url}/web/record.webmanifest", timeout=10)
    assert manifest.headers["Content-Type"].startswith("application/manifest+json")
    app = manifest.json()
    assert (app["start_url"], app["scope"], app["display"]) == ("/record", "/record",
                                                               "standalone")
    assert app["name"] == "Safehold recorder" and app["short_name"]
    for icon in app["icons"]:
        got = requests.get(live_server.url + icon["src"], timeout=10)
        assert got.status_code == 200 and got.headers["Content-Type"].startswith(icon["type"])
        if icon["type"] == "image/png":
            size = int(icon["sizes"].split("x")[0])
            assert png_size(got.content) == (size, size)
    assert {i["sizes"] for i in app["icons"]} >= {"192x192", "512x512"}
    # only the worker gets the wider scope; other built files do not
    other = requests.get(f"{live_server.url}/web/contact.js", timeout=10)
    assert "Service-Worker-Allowed" not in other.headers


def test_a_page_the_worker_stored_opens_with_no_network(browser: Browser,
                                                        own_server: ServerProcess) -> None:
    context, page = new_page(browser)
    try:
        page.goto(f"{own_server.url}/record")
        expect(page.get_by_role("button", name="Set up this phone")).to_be_visible()
        stored = page.evaluate(STORED)
        assert stored == ["/record", "/web/record-icon-192.png", "/web/record-icon-512.png",
                          "/web/record-icon.svg", "/web/record.css", "/web/record.js",
                          "/web/record.webmanifest"]
        assert page.evaluate(ELSEWHERE) == "SecurityError"  # only the scope /record

        own_server.stop()  # nothing can come from the network now, whatever the browser does
        context.set_offline(True)
        page.reload()
        expect(page.get_by_role("heading", name="Safehold recorder")).to_be_visible()
        # the page's code ran (it shows the set-up), so its script came from the store
        expect(page.get_by_role("button", name="Set up this phone")).to_be_visible()
        # the API is the network's business: never answered from the store
        api = page.evaluate("() => fetch('/v1/server').then(() => 'answered', () => 'failed')")
        assert api == "failed"
    finally:
        context.close()


def test_the_manifest_in_web_dist_is_the_source(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent / "web"
    built = json.loads((root / "dist" / "record.webmanifest").read_text())
    assert built == json.loads((root / "src" / "record" / "manifest.webmanifest").read_text())
