"""`safehold worker` as the Procfile runs it: a separate process beside `safehold serve`.

- It delivers what the server queued, by itself, on its interval.
- Killed (-9) after a receiver got a message but before the worker recorded the success, the
  message is sent again by the next worker once the lease runs out: at least once, with the same
  idempotency id, so the receiver keeps exactly one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from contactkit import add_contact
from helpers import PYTHON, ROOT, ServerProcess, registered_device
from notifykit import Received, WebhookReceiver

WORKER_ENV = {"SAFEHOLD_WORKER_INTERVAL": "1", "SAFEHOLD_WEBHOOK_ALLOW_PRIVATE": "1",
              "SAFEHOLD_NOTIFY_RETRY_BASE_SECONDS": "1", "SAFEHOLD_NOTIFY_LEASE_SECONDS": "2"}


class WorkerProcess:
    def __init__(self, server: ServerProcess) -> None:
        env = server.environment()
        env.update(WORKER_ENV)
        self.log_path = server.data_dir.parent / f"worker-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([PYTHON, "-m", "cli.main", "worker"], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def start_worker() -> Iterator[Callable[[ServerProcess], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(server: ServerProcess) -> WorkerProcess:
        started.append(WorkerProcess(server))
        return started[-1]

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_worker_process_delivers_and_stops_cleanly(
        make_server: Callable[..., ServerProcess],
        start_worker: Callable[[ServerProcess], WorkerProcess]) -> None:
    server = make_server()
    receiver = WebhookReceiver().start()
    try:
        worker = start_worker(server)
        owner = registered_device(server.url, server.name)
        add_contact(owner, "immediate", notify_webhook_url=receiver.url)
        encounter = owner.new_encounter()
        wait_for(lambda: receiver.received, "the webhook")
        body = json.loads(receiver.received[0].body)
        assert (body["kind"], body["encounter_id"]) == ("released", encounter)
        assert worker.stop() == 0  # SIGTERM: finishes its pass and exits cleanly
        assert "worker stopped" in worker.output()
    finally:
        receiver.stop()
    assert len(receiver.received) == 1


def stalling_receiver() -> tuple[WebhookReceiver, list[str], threading.Event]:
    """A receiver that takes the first POST in, then holds its answer until told to let go."""
    receiver = WebhookReceiver()
    ids: list[str] = []
    let_go = threading.Event()

    def stall_first(message: Received) -> None:
        ids.append(message.headers["Safehold-Notification-Id"])
        if len(ids) == 1:
            let_go.wait(30)

    receiver.on_request = stall_first
    return receiver.start(), ids, let_go


def test_killed_between_send_and_record_sends_again_with_the_same_id(
        make_server: Callable[..., ServerProcess],
        start_worker: Callable[[ServerProcess], WorkerProcess]) -> None:
    server = make_server()
    receiver, ids, let_go = stalling_receiver()
    try:
        owner = registered_device(server.url, server.name)
        add_contact(owner, "immediate", notify_webhook_url=receiver.url)
        owner.new_encounter()
        first = start_worker(server)
        wait_for(lambda: ids, "the first POST")
        first.stop(signal.SIGKILL)  # the receiver has it; the worker never heard back
        let_go.set()
        start_worker(server)  # the lease (2 s) runs out, then it is sent again
        wait_for(lambda: len(receiver.received) == 2, "the second copy")
        time.sleep(3)  # a few more passes and lease periods: nothing more arrives
    finally:
        let_go.set()
        receiver.stop()
    assert len(ids) == 2 and ids[0] == ids[1]
    assert receiver.received[0].body == receiver.received[1].body
    kept = {json.loads(m.body)["id"] for m in receiver.received}  # a receiver keeps one by id
    assert len(kept) == 1


def test_worker_reports_bad_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(SAFEHOLD_DATA_DIR=str(tmp_path), SAFEHOLD_WORKER_INTERVAL="soon")
    result = subprocess.run([PYTHON, "-m", "cli.main", "worker"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SAFEHOLD_WORKER_INTERVAL" in result.stderr
