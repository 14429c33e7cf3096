"""report.pdf: the same report.html, printed by Chromium's own print engine when it is installed.

A PDF is what gets filed with a court. Chromium prints exactly the page a reader sees (the
timeline picture included) without another layout engine to keep in step with the HTML, so no
PDF library is added: where no Chromium is found, decrypt says so and report.html stands (any
browser's "Print to PDF" makes the same file by hand).

The page has no scripts and no outside references, and its Content-Security-Policy forbids
both (sync/report/html.py); Chromium is run with every host name unresolvable and a throw-away
profile, so printing cannot reach the network or the reader's browser profile. (Turning
scripts off by flag also stops Chromium's print, which runs its own.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PRINT_TIMEOUT = 60.0  # seconds; a cold start takes one or two, a loaded machine more


def find_browser() -> str | None:
    """`SAFEHOLD_CHROMIUM` (a path; empty: never print), else the first browser on PATH."""
    chosen = os.environ.get("SAFEHOLD_CHROMIUM")
    if chosen is not None:
        return chosen or None
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def print_pdf(html: Path, pdf: Path) -> dict[str, str | None]:
    """Print `html` to `pdf`; what was made, or why not (for report.json and the terminal)."""
    browser = find_browser()
    if browser is None:
        return {"file": None, "why": "no Chromium was found (install Debian's chromium, or "
                                     "print report.html to PDF from any browser)"}
    with tempfile.TemporaryDirectory(prefix="safehold-print-") as profile:
        command = [browser, "--headless", "--disable-gpu", "--no-pdf-header-footer",
                   "--host-resolver-rules=MAP * ~NOTFOUND",
                   f"--user-data-dir={profile}", f"--print-to-pdf={pdf}",
                   html.resolve().as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses root otherwise
        try:
            done = subprocess.run(command, capture_output=True, timeout=PRINT_TIMEOUT,
                                  stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pdf.unlink(missing_ok=True)
            return {"file": None, "why": f"{browser} could not print: {exc}"}
    if done.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        pdf.unlink(missing_ok=True)
        return {"file": None, "why": f"{browser} could not print (exit {done.returncode})"}
    return {"file": pdf.name, "made_with": f"{Path(browser).name} --headless --print-to-pdf"}
