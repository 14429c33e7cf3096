"""The production gunicorn worker: connections on an event loop, the app on a few OS threads.

gunicorn's gthread worker gives every connection a thread while it reads the request, so a
dozen clients that send half a request head and stop (or trickle a body) held every thread and
locked phones out. Here each connection is a greenlet on gevent's event loop, which costs a few
KiB and no thread, until its request is complete:

- the request head must arrive within SAFEHOLD_HEADER_TIMEOUT seconds (default 10; also the
  idle time allowed between requests on a kept-alive connection), else the connection closes;
- the body is read into memory by the greenlet (it is at most the chunk limit: larger declared
  bodies are not read, the app refuses them 413), and a connection whose body or response makes
  no progress for SAFEHOLD_BODY_TIMEOUT seconds (default 30) is closed;
- only then does the request go to the app, in a pool of SAFEHOLD_THREADS real OS threads per
  process, and its response is collected there and written back by the greenlet.

Why not gunicorn's plain gevent worker: it monkey-patches threading and sockets, so the app
would run on greenlets, and its blocking calls (fsync, SQLite commits, the cross-process writer
flock) would stall the whole process one at a time; the group commit (server/store/group_commit.py)
would lose the concurrent threads it batches. Nothing is monkey-patched here: the app keeps
the same real threads, locks and sockets it has under gthread.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.lock import Semaphore
from gevent.threadpool import ThreadPool
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

log = logging.getLogger("safehold.server")
READ_SIZE = 64 * 1024
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable)
    return float(text) if text else default


class StalledClient(OSError):
    """The client stopped sending its body; the connection is closed without an answer."""

    def __init__(self) -> None:
        # ENOTCONN: gunicorn closes such a connection quietly (no traceback in the log).
        super().__init__(errno.ENOTCONN, "the client stopped sending its request body")


class ThreadedApp:
    """A WSGI app run on an OS thread pool, with the request body read beforehand.

    Bodies held in memory are bounded per process (SAFEHOLD_BODY_BUFFER_MB, default 256, at
    least two of the largest bodies): a piece is read only once the budget has room for it,
    so many clients sending large bodies at once wait for each other instead of exhausting
    memory. Room is taken as bytes arrive, so a trickling client holds only what it sent."""

    def __init__(self, app: WsgiApp, threads: int) -> None:
        self.app = app
        self.pool = ThreadPool(maxsize=threads)
        config = getattr(app, "config", {})
        self.max_body = int(config.get("MAX_CONTENT_LENGTH") or 64 * 1024 * 1024)
        budget = max(int(_seconds("SAFEHOLD_BODY_BUFFER_MB", 256) * 1024 * 1024),
                     2 * self.max_body)
        self.budget = Semaphore(budget // READ_SIZE + 1)
        self.body_timeout = _seconds("SAFEHOLD_BODY_TIMEOUT", 30.0)

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        pieces = 0
        try:
            body, pieces = self._read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            status, headers, answer = self.pool.spawn(self._run, environ).get()
        finally:
            for _ in range(pieces):
                self.budget.release()
        start_response(status, headers)
        return answer

    def _read_body(self, environ: Environ) -> tuple[bytes, int]:
        """The whole body, read on this greenlet, and the budget pieces it holds; nothing if it
        declares more than the app would take (the app then refuses it on Content-Length)."""
        declared = environ.get("CONTENT_LENGTH")
        length = int(declared) if declared and declared.isdigit() else None
        if length is not None and length > self.max_body:
            return b"", 0
        limit = self.max_body + 1 if length is None else length
        stream, parts, size, held = environ["wsgi.input"], [], 0, 0
        try:
            while size < limit:
                # One piece of room per read: gunicorn's body reads return READ_SIZE bytes
                # (all but the last), waiting for them, so a piece is about what it holds.
                if not self.budget.acquire(timeout=self.body_timeout):
                    raise TimeoutError("no room to buffer the body")
                held += 1
                part = stream.read(min(READ_SIZE, limit - size))
                if not part:
                    break
                parts.append(part)
                size += len(part)
        except TimeoutError:
            for _ in range(held):
                self.budget.release()
            sock = environ.get("gunicorn.socket")
            if sock is not None:
                sock.close()
            log.info("closed a connection from %s whose request body stalled",
                     environ.get("REMOTE_ADDR"))
            raise StalledClient() from None
        return b"".join(parts), held

    def _run(self, environ: Environ) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        """On a pool thread: call the app and collect its whole response."""
        answer: dict[str, Any] = {}
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            answer["status"], answer["headers"] = status, headers
            return written.append

        result = self.app(environ, start_response)
        try:
            written.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return answer["status"], answer["headers"], written


class BufferedGeventWorker(GeventWorker):
    """gunicorn worker class `server.ops.evented.BufferedGeventWorker` (see the module doc)."""

    sockets: list[Any]  # set by gunicorn
    wsgi: Any

    def patch(self) -> None:
        # Only the listening sockets become gevent sockets; nothing is monkey-patched.
        listeners: list[Any] = self.sockets  # gunicorn's own listener objects
        self.sockets = [gsocket.socket(s.FAMILY, socket.SOCK_STREAM, fileno=s.sock.detach())
                        for s in listeners]

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app: WsgiApp = self.wsgi
        self.wsgi = ThreadedApp(app, self.cfg.threads)

    def timeout_ctx(self) -> gevent.Timeout:
        # Around reading each request head, and the wait for the next one on a kept-alive
        # connection: past it the connection closes quietly.
        return gevent.Timeout(_seconds("SAFEHOLD_HEADER_TIMEOUT", 10.0), False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # A deadline on every read and write of the connection (body and response); gevent
        # raises TimeoutError after that long without progress.
        client.settimeout(_seconds("SAFEHOLD_BODY_TIMEOUT", 30.0))
        AsyncWorker.handle(self, listener, client, addr)
