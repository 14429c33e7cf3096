"""Shared fixtures: real server processes on loopback, and registered devices.

`live_server` is one `safehold serve` for the whole session (tests make their own accounts and
encounters, so they do not disturb each other); `make_server` starts extra servers with their
own settings (low limits, short lifetimes) and stops them after the test. `clocked_server` is
the app with an injected clock, for tests that move time (notifications, deletion delays), and
`receiver` a webhook receiver on loopback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import Device, ServerProcess, registered_device
from notifykit import AppServer, WebhookReceiver
from pgkit import on_postgres

ServerFactory = Callable[..., ServerProcess]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): opens the server's SQLite file "
                            "itself; skipped on the PostgreSQL pass (tests/pgkit.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not on_postgres():
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("live-server") / "data"
    # A high rate limit: the whole suite shares this server from one address.
    server = ServerProcess(data_dir, env={"SAFEHOLD_RATE_PER_MINUTE": "100000",
                                          "SAFEHOLD_AUTH_FAILURES_PER_MINUTE": "100000"}).start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    started: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None, kind: str = "serve",
             data_dir: Path | None = None) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / f"data{len(started)}", env=env, kind=kind)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def device(live_server: ServerProcess) -> Device:
    """A new account with one logged-in device on the session server."""
    return registered_device(live_server.url, live_server.name)


@pytest.fixture
def other_device(live_server: ServerProcess) -> Device:
    """A device of a different account on the same server."""
    return registered_device(live_server.url, live_server.name)


@pytest.fixture
def clocked_server(tmp_path: Path) -> Iterator[AppServer]:
    app = AppServer(tmp_path / "data").start()
    yield app
    app.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()
