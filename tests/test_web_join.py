"""The contact page joins an invitation in a real browser, as `safehold contact join` does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from age_tty import run_with_tty
from helpers import ServerProcess
from playwright.sync_api import Browser, Page, Route, expect
from synckit import cli, register
from webkit import PASSPHRASE, join_on_page, launch, new_page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context, page = new_page(browser)
    yield page
    context.close()


def test_join_from_link_pins_the_contact_with_the_same_safety_number(
        page: Page, live_server: ServerProcess, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    register(phone, live_server.url)
    code = cli(phone, "invite", "--long", "--name", "Mom", "--policy", "immediate").stdout.strip()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(
        f"{r.url}\n{r.headers}\n{(r.post_data_buffer or b'').decode(errors='replace')}"))

    safety = join_on_page(page, live_server.url, code)

    # The secret half of the code stayed in the fragment: no request (address, headers or
    # body) ever carried it.
    secret = code.split(".")[1]
    assert any("/accept" in r for r in requests) and not any(secret in r for r in requests)
    assert "#" not in page.url  # and it left the address bar
    contacts = cli(phone, "contacts")
    assert contacts.returncode == 0, contacts.stderr
    assert "Mom  [immediate]  pinned" in contacts.stdout
    assert f"safety number: {safety}" in contacts.stdout

    # The key file is a passphrase-protected age identity file that `age -d` opens.
    with page.expect_download() as download:
        page.get_by_role("link", name="Save my key file").click()
    key_file = tmp_path / "mom.key.age"
    download.value.save_as(key_file)
    assert key_file.read_text().startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    out = tmp_path / "mom.key"
    status, transcript = run_with_tty(["age", "-d", "-o", str(out), str(key_file)], [PASSPHRASE])
    assert status == 0, transcript
    lines = out.read_text().splitlines()
    assert lines[1].startswith("# public key: age1") and lines[2].startswith("AGE-SECRET-KEY-1")

    # Back on the page later: the keys open only with the passphrase.
    page.reload()
    expect(page.get_by_label("Safety number")).to_have_text(safety)
    passphrase = page.get_by_role("textbox", name="Passphrase", exact=True)
    passphrase.fill("not the passphrase")
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("status")).to_have_text("That passphrase does not open your keys.")
    passphrase.fill(PASSPHRASE)
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("heading", name="Recordings shared with you")).to_be_visible()
    expect(page.get_by_text("Nothing has been shared with you yet.")).to_be_visible()


def test_a_changed_invitation_is_refused_and_nothing_is_sent(
        page: Page, live_server: ServerProcess, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    register(phone, live_server.url)
    code = cli(phone, "invite", "--long", "--name", "Eve").stdout.strip()
    # Another secret for the same invitation id: the owner proof cannot match, as when the
    # server shows keys or terms the owner's device did not commit to.
    forged = code.split(".")[0] + "." + ("A" * 42 + "E")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(f"{live_server.url}/contact")
    page.get_by_role("textbox", name="Invitation code").fill(forged)
    page.get_by_role("textbox", name="Passphrase", exact=True).fill(PASSPHRASE)
    page.get_by_role("textbox", name="Repeat passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("status")).to_contain_text("does not match the code's secret")
    assert posts == []
    contacts = cli(phone, "contacts")
    assert contacts.returncode == 0 and "pinned" not in contacts.stdout, contacts


def test_a_join_whose_answer_was_lost_is_finished_with_the_same_keys(
        page: Page, live_server: ServerProcess, tmp_path: Path) -> None:
    phone = tmp_path / "phone"
    register(phone, live_server.url)
    code = cli(phone, "invite", "--long", "--name", "Dad").stdout.strip()
    lost: list[str] = []

    def lose_first_answer(route: Route) -> None:
        if lost:
            route.continue_()
            return
        lost.append(route.fetch().text())  # the server accepted; the answer never arrives
        route.abort()

    page.route("**/accept", lose_first_answer)
    page.goto(f"{live_server.url}/contact#invite={code}")
    fields = [page.get_by_role("textbox", name="Passphrase", exact=True),
              page.get_by_role("textbox", name="Repeat passphrase")]
    for field in fields:
        field.fill(PASSPHRASE)
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("status")).to_contain_text("Could not join")
    assert lost and "pending" in lost[0]

    # Trying again with another passphrase cannot reach the keys kept the first time...
    for field in fields:
        field.fill("another passphrase")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("status")).to_contain_text("use the passphrase you chose then")
    # ...with the first one, the same keys are sent again and the server takes them.
    for field in fields:
        field.fill(PASSPHRASE)
    page.get_by_role("button", name="Join").click()
    safety = page.get_by_label("Safety number")
    expect(safety).to_have_text(re.compile(r"^(\d{5} ){11}\d{5}$"))
    contacts = cli(phone, "contacts")
    assert f"safety number: {safety.inner_text()}" in contacts.stdout, contacts
    assert "Dad  [on alert]  pinned" in contacts.stdout
