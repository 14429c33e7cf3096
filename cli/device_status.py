"""`safehold device status`: what this device holds, and the tampering it has found.

Offline: it reads only the state folder. A finding (sync/upload/findings.py) is listed for good,
settled or not, so the owner (or a lawyer helping them) can cite it later.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import EXIT_OK
from sync.device.state import StateFolder
from sync.safetext import safe_text
from sync.upload import findings
from sync.upload.outbox import ACKNOWLEDGED, QUEUED, SEALED, UPLOADING


def status(args: argparse.Namespace) -> int:
    state = StateFolder(Path(args.state))
    settings = state.require_registered()
    outbox = state.outbox()
    counts = outbox.counts()
    print(f"device {settings.device_id} (account {settings.account_id}) on "
          f"{safe_text(settings.server_url)}")
    print("chunks: " + ", ".join(f"{counts.get(name, 0)} {name}"
                                 for name in (ACKNOWLEDGED, QUEUED, UPLOADING, SEALED)))
    found = findings.listed(outbox)
    if not found:
        print("tampering findings: none")
        return EXIT_OK
    print(f"tampering findings: {len(found)}")
    for finding in found:
        settled = (f"settled {finding.settled_at}" if finding.settled_at else "NOT settled")
        print(f"  #{finding.id} {finding.found_at} {finding.kind.upper()} ({settled}): "
              f"{safe_text(finding.describe())}")
    return EXIT_OK
