"""Real peers for notification and deletion tests, all on loopback.

- `WebhookReceiver`: an http.server in a thread that records every POST (and can be told to
  answer with an error status); it can be started late on a port reserved up front, so "the
  receiver was down, then came up" is a real connection refusal followed by a real delivery.
- `SmtpSink`: an aiosmtpd server in its own thread that records every message it accepts.
- `FakeClock`: the time the app and the worker see (config CLOCK), moved by the test.
- `AppServer`: the real Flask app (create_app) served over HTTP by werkzeug in a thread, so the
  test and the worker share its clock; `worker()` builds the real worker on the same store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from helpers import free_port
from pgkit import database_url_for
from werkzeug.serving import make_server

from server.app import create_app
from server.worker import Worker, build_worker

START = 1_795_836_600.0  # 2026-11-28T03:30:00Z (helpers.STARTED_AT): a fixed, known "now"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/safehold"
        self.received: list[Received] = []
        self.status = 200
        # Called with each request before it is recorded and answered (e.g. to stall it).
        self.on_request: Callable[[Received], None] | None = None
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                message = Received(self.path, dict(self.headers.items()),
                                   self.rfile.read(length))
                if receiver.on_request is not None:
                    receiver.on_request(message)
                receiver.received.append(message)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.original_content or envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.recorder = _Recorder()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[tuple[str, list[str], Message]]:
        return self.recorder.messages

    def start(self) -> SmtpSink:
        self._controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class AppServer:
    data_dir: Path
    settings: dict[str, Any] = field(default_factory=dict)
    clock: FakeClock = field(default_factory=FakeClock)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = f"127.0.0.1:{self.port}"
        self.config: dict[str, Any] = {
            "DATA_DIR": self.data_dir, "PUBLIC_URL": self.url, "CLOCK": self.clock,
            "RATE_PER_MINUTE": 100000, "AUTH_FAILURES_PER_MINUTE": 100000,
            "WEBHOOK_ALLOW_PRIVATE": True,
            # Tests move the clock by days; logins made at the start must stay valid.
            "TOKEN_TTL_SECONDS": 90 * 24 * 3600,
            "DATABASE_URL": database_url_for(self.data_dir), **self.settings,
        }
        self.app = create_app(self.config)
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> AppServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def full_config(self) -> dict[str, Any]:
        return dict(self.app.extensions["safehold"].config)

    def worker(self, **overrides: Any) -> Worker:
        """The real worker over this server's store, blob store and clock."""
        worker = build_worker({**self.full_config, **overrides})
        worker.jitter = lambda: 1.0  # the longest backoff, so "not yet due" is unambiguous
        return worker
