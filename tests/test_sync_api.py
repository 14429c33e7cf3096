"""The API client's error mapping and the uploader's backoff, against real sockets."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator

import pytest

from sync.api import ApiClient
from sync.errors import NetworkError, ServerRefusal
from sync.upload.uploader import Backoff


def one_shot_server(response: bytes) -> Iterator[str]:
    """A loopback socket that answers every connection with `response` bytes, then closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(response)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


@pytest.fixture
def answering(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from one_shot_server(request.param)


TRUNCATED = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
             b'{"server_key": "abc')
GARBLED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n<html"
ENVELOPE = b'{"error": {"code": "rate_limited", "message": "slow down"}}'
REFUSAL = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 7"
           b"\r\nContent-Length: %d\r\n\r\n%s" % (len(ENVELOPE), ENVELOPE))
BARE_502 = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad"


@pytest.mark.parametrize("answering", [TRUNCATED], indirect=True)
def test_a_truncated_answer_is_a_network_error(answering: str) -> None:
    with pytest.raises(NetworkError, match="cut off|connection"):
        ApiClient(answering).server_info()


@pytest.mark.parametrize("answering", [GARBLED], indirect=True)
def test_a_garbled_answer_is_a_network_error(answering: str) -> None:
    with pytest.raises(NetworkError, match="not JSON"):
        ApiClient(answering).server_info()


@pytest.mark.parametrize("answering", [REFUSAL], indirect=True)
def test_the_error_envelope_becomes_a_refusal_with_retry_after(answering: str) -> None:
    with pytest.raises(ServerRefusal) as caught:
        ApiClient(answering).server_info()
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        429, "rate_limited", 7.0)
    assert caught.value.retryable


@pytest.mark.parametrize("answering", [BARE_502], indirect=True)
def test_a_proxy_error_without_envelope_is_a_retryable_refusal(answering: str) -> None:
    with pytest.raises(ServerRefusal) as caught:
        ApiClient(answering).server_info()
    assert caught.value.code == "http_502" and caught.value.retryable


def test_backoff_grows_with_jitter_under_a_cap_and_honours_retry_after() -> None:
    backoff = Backoff(base=0.2, cap=10.0, rng=random.Random(1))
    early = [backoff.delay(0) for _ in range(200)]
    late = [backoff.delay(12) for _ in range(200)]
    assert max(early) <= 0.2 and max(late) <= 10.0
    assert sum(late) / len(late) > 10 * sum(early) / len(early)
    assert len(set(early)) > 100  # jittered, not in lockstep
    assert min(backoff.delay(0, retry_after=3.0) for _ in range(50)) >= 3.0
