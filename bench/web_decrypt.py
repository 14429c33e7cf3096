"""bench/web_decrypt.py: decrypting a recording in the contact page vs `safehold decrypt`, same run.

A live `safehold serve` on loopback; a phone (`safehold device register/invite/contacts/record`)
records SIZE MiB (default 64) in 1 MiB chunks for a contact who joined in Debian's Chromium
(Playwright, as the browser tests do). Then it times:
  - web:      the page's "Decrypt": fetch every chunk over loopback, check what verify checks
              (checkpoint, leaves, signatures, receipts, proofs, digests, slots), decrypt with
              age-encryption, reassemble the stream; until the stream shows "complete";
  - bundle:   the page's "Download bundle" appearing afterwards (consistency proofs + zip);
  - cli:      `safehold decrypt BUNDLE -i KEY -o OUT` on the bundle the page made (verify +
              decrypt + report, from local disk; the plain identity file, no scrypt);
  - cli+fetch: a second contact (joined with `safehold contact join`) runs `safehold fetch` and
              then `safehold decrypt`: the CLI doing what the page does, network included,
and prints the medians and the ratios web / cli (how many times slower the browser is). The
page's and the CLI's outputs are compared with the recorded file, so a fast wrong answer
cannot count.

Usage: .venv/bin/python bench/web_decrypt.py [--mib 64] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from age_tty import run_with_tty  # noqa: E402
from helpers import PYTHON, ServerProcess  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402
from synckit import cli, client_env, register  # noqa: E402
from webkit import PASSPHRASE, join_on_page, launch, new_page  # noqa: E402

CHUNK = 1 << 20


def save(page: Page, link: object, target: Path) -> bytes:
    with page.expect_download() as got:
        link.click()  # type: ignore[attr-defined]
    got.value.save_as(target)
    return target.read_bytes()


def web_run(page: Page, encounter: str, data: bytes, work: Path) -> tuple[float, float, Path]:
    page.reload()
    page.get_by_role("textbox", name="Passphrase", exact=True).fill(PASSPHRASE)
    page.get_by_role("button", name="Open").click()
    item = page.locator(f"li[data-encounter='{encounter}']")
    expect(item).to_be_visible(timeout=60_000)
    start = time.perf_counter()
    item.get_by_role("button", name="Decrypt").click()
    audio = item.locator("li[data-stream='audio']")
    expect(audio).to_contain_text("complete:", timeout=600_000)
    decrypted = time.perf_counter() - start
    bundle_link = item.get_by_role("link", name="Download bundle")
    expect(bundle_link).to_be_visible(timeout=600_000)
    bundled = time.perf_counter() - start - decrypted
    got = save(page, audio.get_by_role("link", name="Download", exact=True), work / "web.bin")
    if got != data:
        raise SystemExit("the page's download differs from the recording")
    bundle = work / "case.zip"
    save(page, bundle_link, bundle)
    return decrypted, bundled, bundle


def safehold(*args: str) -> None:
    done = subprocess.run([PYTHON, "-m", "cli.main", *args], cwd=ROOT, env=client_env(),
                          capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"safehold {args[0]} failed: {done.stderr.decode()}")


def cli_run(bundle: Path, key: Path, out: Path, data: bytes) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    safehold("decrypt", str(bundle), "-i", str(key), "-o", str(out))
    took = time.perf_counter() - start
    if (out / "audio.bin").read_bytes() != data:
        raise SystemExit("safehold decrypt wrote another file than the recording")
    return took


def cli_fetch_run(encounter: str, state: Path, key: Path, work: Path, data: bytes) -> float:
    shutil.rmtree(work / "fetched", ignore_errors=True)
    start = time.perf_counter()
    safehold("fetch", encounter, "-o", str(work / "fetched"), "--state", str(state))
    took = time.perf_counter() - start
    return took + cli_run(work / "fetched", key, work / "out-fetched", data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="web-decrypt-"))
    server = ServerProcess(work / "data", env={"SAFEHOLD_RATE_PER_MINUTE": "100000"}).start()
    browser_gen = launch()
    browser = next(browser_gen)
    try:
        context, page = new_page(browser)
        phone = work / "phone"
        register(phone, server.url)
        code = cli(phone, "invite", "--long", "--policy", "immediate").stdout.strip()
        join_on_page(page, server.url, code)
        other = work / "other"
        safehold("keygen", "-o", str(work / "other.key"))
        second = cli(phone, "invite", "--long", "--policy", "immediate").stdout.strip()
        safehold("contact", "join", second, "--server", server.url, "--identity",
                 str(work / "other.key"), "--state", str(other))
        assert cli(phone, "contacts").returncode == 0
        data = os.urandom(args.mib << 20)
        (work / "rec.bin").write_bytes(data)
        recorded = cli(phone, "record", str(work / "rec.bin"), "--chunk-bytes", str(CHUNK),
                       timeout=1200)
        assert recorded.returncode == 0, recorded.stderr
        encounter = recorded.stdout.split()[0]
        key_file = work / "key.age"
        save(page, page.get_by_role("link", name="Save my key file"), key_file)
        status, transcript = run_with_tty(["age", "-d", "-o", str(work / "key.txt"),
                                           str(key_file)], [PASSPHRASE])
        assert status == 0, transcript
        web, bundling, clis, fetches = [], [], [], []
        for _ in range(args.runs):
            took, bundled, bundle = web_run(page, encounter, data, work)
            web.append(took)
            bundling.append(bundled)
            clis.append(cli_run(bundle, work / "key.txt", work / "out", data))
            fetches.append(cli_fetch_run(encounter, other, work / "other.key", work, data))
        context.close()
    finally:
        browser_gen.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    w, b, c, f = (statistics.median(x) for x in (web, bundling, clis, fetches))
    mib = args.mib
    print(f"recording: {mib} MiB in {-(-(mib << 20) // CHUNK)} chunks of 1 MiB, runs={args.runs}")
    print(f"web  fetch+verify+decrypt in Chromium: {w:7.2f} s  ({mib / w:6.1f} MiB/s)")
    print(f"web  bundle zip afterwards:            {b:7.2f} s")
    print(f"cli  safehold decrypt (local bundle):  {c:7.2f} s  ({mib / c:6.1f} MiB/s)")
    print(f"cli  safehold fetch + decrypt:         {f:7.2f} s  ({mib / f:6.1f} MiB/s)")
    print(f"ratio web / cli decrypt: {w / c:.2f}x   web / cli fetch+decrypt: {w / f:.2f}x")


if __name__ == "__main__":
    main()
