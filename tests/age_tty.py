"""Run a program on a fresh pseudo-terminal and type answers at its prompts.

`age` (and `safehold keygen --passphrase`) read passphrases from the controlling terminal, not
from stdin, so the interop tests give them a real one with pty.fork().
"""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Mapping, Sequence


def run_with_tty(argv: Sequence[str], answers: Sequence[str], *, cwd: str | None = None,
                 env: Mapping[str, str] | None = None,
                 timeout: float = 60.0) -> tuple[int, str]:
    """Run `argv` with a pty as its terminal; type the next answer whenever a prompt (a line
    ending in ':') appears. Returns (exit code, what it wrote on the terminal)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec, or die without running the parent's cleanup
        try:
            if cwd is not None:
                os.chdir(cwd)
            os.execvpe(argv[0], list(argv), dict(env if env is not None else os.environ))
        finally:
            os._exit(127)
    transcript, answered_at, pending = b"", 0, list(answers)
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            transcript += chunk
            # A prompt is new output since the last answer that ends in ':' (not the echo of
            # the newline after an answer, which would make us type into a flushed buffer).
            if pending and transcript[answered_at:].rstrip().endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
                answered_at = len(transcript)
        else:
            os.kill(pid, signal.SIGKILL)
            raise TimeoutError(f"{argv[0]} did not finish: {transcript!r}")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), transcript.decode(errors="replace")
