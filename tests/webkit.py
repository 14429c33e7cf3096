"""Browser tests: Debian's Chromium driven by Playwright for Python (Playwright's own browser
download is not used). One browser per test module (`browser` fixture); each test gets a fresh
context, so IndexedDB starts empty.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
expect.set_options(timeout=30_000)
PASSPHRASE = "correct horse battery staple"


def launch() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return context, page


def join_on_page(page: Page, url: str, code: str, via_link: bool = True) -> str:
    if via_link:
        page.goto(f"{url}/contact#invite={code}")
        expect(page.get_by_role("textbox", name="Invitation code")).to_have_value(code)
    else:
        page.goto(f"{url}/contact")
        page.get_by_role("textbox", name="Invitation code").fill(code)
    page.get_by_role("textbox", name="Passphrase", exact=True).fill(PASSPHRASE)
    page.get_by_role("textbox", name="Repeat passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Join").click()
    safety = page.get_by_label("Safety number")
    expect(safety).to_have_text(re.compile(r"^(\d{5} ){11}\d{5}$"))
    return safety.inner_text()
