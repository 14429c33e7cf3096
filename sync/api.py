"""HTTP client for every endpoint the device side uses (docs/protocol.md, section http-api).

Failures come out as two kinds a caller can act on:
- NetworkError: nothing usable came back (refused, reset, timed out, truncated or garbled body);
  the request may or may not have reached the server, so only idempotent requests are retried.
- ServerRefusal: the server answered with its JSON error envelope (status, stable code, message).

Login is a signed challenge (device/account.py signs); the client logs in on first use
and again, once, when the server says the token is no longer valid.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from sync.errors import NetworkError, OverLimit, ServerRefusal, StateError
from sync.upload.direct import DirectRoute
from sync.upload.pacing import PacedBody, low_latency_session

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
# 401 codes after which logging in again may help.
RELOGIN_CODES = {"auth_required", "invalid_token", "token_expired", "expired_token"}
TokenProvider = Callable[["ApiClient"], str]
Sink = Callable[[bytes], object]  # takes the pieces of a response body in order
# Every answer is read with a bound, so a broken or hostile server cannot grow the client
# without end: JSON answers (a page of 1000 log leaves is ~0.7 MB) and error bodies.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
ERROR_BODY_BYTES = 64 * 1024
READ_PIECE = 64 * 1024


def server_name_of(url: str) -> str:
    """The netloc (host[:port]) of a server URL: what the server's key and checkpoints name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StateError(f"not a server URL (want http(s)://host[:port]): {url!r}")
    return parts.netloc.lower()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class ApiClient:
    """One server, one optional login. Safe to share between threads (a session per thread)."""

    def __init__(self, base_url: str, token_provider: TokenProvider | None = None,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        server_name_of(base_url)
        self.base_url = base_url.rstrip("/")
        self.token_provider = token_provider
        self.timeout = timeout
        self._shared_session = session
        self._local = threading.local()
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self.rate_wait: RateWait | None = None  # None: a 429 is raised at once
        self.direct = DirectRoute()  # chunk bodies straight to S3, when the server offers it

    @property
    def session(self) -> requests.Session:
        if self._shared_session is not None:
            return self._shared_session
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = low_latency_session()
            self._local.session = session
        return session

    # -- plumbing ----------------------------------------------------------------------------
    def _auth_header(self, refresh: bool, stale: str | None) -> dict[str, str]:
        if self.token_provider is None:
            raise StateError("this request needs a login, but no device key is configured")
        with self._token_lock:
            # Another thread may already have refreshed the token we saw fail.
            if self._token is None or (refresh and self._token == stale):
                self._token = self.token_provider(self)
            return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, *, auth: bool = False,
                json_body: Mapping[str, Any] | None = None,
                data: bytes | PacedBody | None = None,
                headers: Mapping[str, str] | None = None,
                params: Mapping[str, Any] | None = None, sink: Sink | None = None,
                max_bytes: int = MAX_RESPONSE_BYTES) -> requests.Response:
        """Send one request; return the 2xx response or raise NetworkError / ServerRefusal.

        The body is read into the response, or with `sink` handed to it piece by piece (the
        response then holds none); either way never more than `max_bytes` of it (OverLimit).
        With `rate_wait` set, a 429/503 that says how long to wait is waited out and retried.
        """
        stale, refresh, waits = self._token, False, 0
        while True:
            sent = dict(headers or {})
            if auth:
                sent.update(self._auth_header(refresh=refresh, stale=stale))
                stale = sent["Authorization"].removeprefix("Bearer ")
            response = self._send(method, path, json_body, data, sent, params, sink, max_bytes)
            if response.status_code < 400:
                return response
            refusal = refusal_from(response)
            if auth and not refresh and refusal.status == 401 and refusal.code in RELOGIN_CODES:
                refresh = True
                continue
            refresh = False
            if self.rate_wait is None or not self.rate_wait.wait_out(refusal, waits):
                raise refusal
            waits += 1

    def _send(self, method: str, path: str, json_body: Mapping[str, Any] | None,
              data: bytes | PacedBody | None, headers: dict[str, str],
              params: Mapping[str, Any] | None, sink: Sink | None,
              max_bytes: int) -> requests.Response:
        url = self.base_url + path
        try:
            response = self.session.request(method, url, json=json_body, data=data,
                                            headers=headers, params=params, timeout=self.timeout,
                                            stream=True)
            with response:  # read the whole body now so truncation shows up here
                if response.status_code >= 400:
                    body = _read_bounded(response, ERROR_BODY_BYTES, None)
                elif sink is None:
                    body = _read_bounded(response, max_bytes, f"{method} {path}")
                else:
                    _pour(response, sink, max_bytes, f"{method} {path}")
                    body = b""
            # What was read (within its bound) becomes the body that .content and .json()
            # give, as if requests had read it: callers stay as they are.
            response._content = body
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise StateError(f"bad server URL {url!r}: {exc}")
        except requests.RequestException as exc:
            raise NetworkError(f"{method} {path}: {_network_reason(exc)}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _json_of(self.request(method, path, **kwargs), method, path)

    def json_created(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Like `json`, plus `"created": True` when the server answered 201 (new)."""
        response = self.request(method, path, **kwargs)
        body = _json_of(response, method, path)
        body["created"] = response.status_code == 201
        return body


    # -- server, accounts, login ---------------------------------------------------------------
    def server_info(self) -> dict[str, Any]:
        info = self.json("GET", "/v1/server")
        self.direct.offered = info.get("direct_uploads") is True
        return info

    def create_account(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.json("POST", "/v1/accounts", json_body=body)

    def challenge(self, device_id: str) -> dict[str, Any]:
        return self.json("POST", "/v1/auth/challenge", json_body={"device_id": device_id})

    def token(self, device_id: str, challenge: str, signature: bytes) -> dict[str, Any]:
        return self.json("POST", "/v1/auth/token", json_body={
            "device_id": device_id, "challenge": challenge, "signature": b64(signature)})

    def create_device_invitation(self) -> dict[str, Any]:
        return self.json("POST", "/v1/devices/invitations", auth=True, json_body={})

    def add_device(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.json("POST", "/v1/devices", json_body=body)

    def account(self) -> dict[str, Any]:
        return self.json("GET", "/v1/account", auth=True)

    # -- encounters and chunks -----------------------------------------------------------------
    def create_encounter(self, encounter_id: str, started_at: str) -> dict[str, Any]:
        return self.json_created("PUT", f"/v1/encounters/{_seg(encounter_id)}", auth=True,
                                 json_body={"started_at": started_at})

    def list_encounters(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/v1/encounters", auth=True)["encounters"])

    def encounter(self, encounter_id: str) -> dict[str, Any]:
        return self.json("GET", f"/v1/encounters/{_seg(encounter_id)}", auth=True)

    def put_chunk(self, encounter_id: str, stream: str, seq: int, body: bytes | PacedBody,
                  descriptor_note: str) -> dict[str, Any]:
        headers = {"Content-Type": "application/octet-stream",
                   "Safehold-Descriptor": b64(descriptor_note.encode("utf-8"))}
        path = _chunk_path(encounter_id, stream, seq)
        if self.direct.usable():
            receipt = self.direct.put(self, path, body, headers)
            if receipt is not None:
                return receipt
            body = body.data if isinstance(body, PacedBody) else body  # maybe half read
        return self.json("PUT", path, auth=True, data=body, headers=headers)

    def get_chunk(self, encounter_id: str, stream: str, seq: int) -> tuple[bytes, str]:
        """The stored age file and its signed descriptor note."""
        response = self.request("GET", _chunk_path(encounter_id, stream, seq), auth=True)
        note = unb64(response.headers.get("Safehold-Descriptor", "")).decode("utf-8")
        return response.content, note

    def chunk_range(self, encounter_id: str, stream: str, seq: int, first: int, length: int,
                    sink: Sink) -> None:
        """Bytes [first, first + length) of a chunk into `sink`; never more than `length`."""
        self.request("GET", _chunk_path(encounter_id, stream, seq), auth=True,
                     headers={"Range": f"bytes={first}-{first + length - 1}"}, sink=sink,
                     max_bytes=length)

    def chunk_pack(self, encounter_id: str, stream: str, start: int, end: int, sink: Sink,
                   max_bytes: int) -> None:
        """The age files of seqs [start, end) of a stream, one after the other, into `sink`;
        never more than `max_bytes` (the sum of their signed sizes)."""
        self.request("GET", f"/v1/encounters/{_seg(encounter_id)}/streams/{_seg(stream)}/pack",
                     auth=True, params={"start": start, "end": end}, sink=sink,
                     max_bytes=max_bytes)

    def chunk_receipt(self, encounter_id: str, stream: str, seq: int) -> dict[str, Any]:
        return self.json("GET", _chunk_path(encounter_id, stream, seq) + "/receipt", auth=True)

    # -- the encounter's log -----------------------------------------------------------------
    def latest_checkpoint(self, encounter_id: str) -> dict[str, Any]:
        return self.json("GET", f"/v1/encounters/{_seg(encounter_id)}/log/checkpoint", auth=True)

    def consistency(self, encounter_id: str, first: int, second: int) -> list[bytes]:
        body = self.json("GET", f"/v1/encounters/{_seg(encounter_id)}/log/consistency",
                         auth=True, params={"first": first, "second": second})
        return [unb64(item) for item in body["proof"]]

    def inclusion(self, encounter_id: str, index: int, tree_size: int) -> list[bytes]:
        body = self.json("GET", f"/v1/encounters/{_seg(encounter_id)}/log/inclusion",
                         auth=True, params={"index": index, "tree_size": tree_size})
        return [unb64(item) for item in body["proof"]]

    def leaves(self, encounter_id: str, start: int, end: int) -> list[dict[str, Any]]:
        body = self.json("GET", f"/v1/encounters/{_seg(encounter_id)}/log/leaves", auth=True,
                         params={"start": start, "end": end})
        return list(body["leaves"])

    def receipts(self, encounter_id: str, stream: str, start: int, limit: int) -> dict[str, Any]:
        """A page of a stream's receipts with descriptors, from seq `start`: {receipts, next}."""
        return self.json("GET", f"/v1/encounters/{_seg(encounter_id)}/streams/{_seg(stream)}"
                         "/receipts", auth=True, params={"start": start, "limit": limit})

    def changes(self, cursor: str | None, limit: int = 500) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self.json("GET", "/v1/changes", auth=True, params=params)


def _read_bounded(response: requests.Response, limit: int, what: str | None) -> bytes:
    """At most `limit` body bytes; more is OverLimit, or (what=None: an error body, only read
    for its message) cut off there."""
    parts: list[bytes] = []
    _pour(response, parts.append, limit, what)
    return b"".join(parts)


def _pour(response: requests.Response, sink: Sink, limit: int, what: str | None) -> None:
    got = 0
    for piece in response.iter_content(READ_PIECE):
        if got + len(piece) > limit:
            if what is None:
                sink(piece[:limit - got])
                return
            raise OverLimit(f"{what}: the server sent more than the {limit} bytes expected; "
                            "cut off there (a broken or hostile server)")
        sink(piece)
        got += len(piece)


@dataclass
class RateWait:
    """How a client waits out "too many requests": sleep what the server asks (Retry-After),
    say so through `on_wait`, and try again; never longer than `max_wait` seconds at once nor
    more than `max_waits` times for one request (then the refusal stands)."""

    on_wait: Callable[[float, ServerRefusal], None]
    max_wait: float = 300.0
    max_waits: int = 60
    sleep: Callable[[float], None] = time.sleep

    def wait_out(self, refusal: ServerRefusal, waits: int) -> bool:
        if refusal.status not in (429, 503) or waits >= self.max_waits:
            return False
        seconds = refusal.retry_after if refusal.retry_after is not None \
            else min(2.0 ** waits, 60.0)
        if seconds > self.max_wait:
            raise ServerRefusal(refusal.status, refusal.code,
                                f"{refusal.message} (a wait of {seconds:g} s is longer than the "
                                f"{self.max_wait:g} s waited at once; try again later)",
                                retry_after=refusal.retry_after)
        self.on_wait(seconds, refusal)
        self.sleep(seconds)
        return True


def _json_of(response: requests.Response, method: str, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise NetworkError(f"{method} {path}: the response body is not JSON "
                           f"(truncated or garbled on the way?)")
    if not isinstance(body, dict):
        raise NetworkError(f"{method} {path}: expected a JSON object, got {type(body).__name__}")
    return body


def _seg(value: str) -> str:
    return quote(value, safe="")


def _chunk_path(encounter_id: str, stream: str, seq: int) -> str:
    return f"/v1/encounters/{_seg(encounter_id)}/streams/{_seg(stream)}/chunks/{int(seq)}"


def refusal_from(response: requests.Response) -> ServerRefusal:
    """Read the error envelope; a body without one still becomes a refusal with its status."""
    code = f"http_{response.status_code}"
    message = printable(response.reason or "no reason given", 100)
    try:
        error = response.json()["error"]
        code, message = printable(str(error["code"]), 64), printable(str(error["message"]), 500)
    except (ValueError, KeyError, TypeError):
        pass
    return ServerRefusal(response.status_code, code, message,
                         retry_after=_retry_after(response.headers.get("Retry-After")))


def printable(text: str, limit: int) -> str:
    """A server's words as one line that cannot steer a terminal: control characters (newlines,
    escape sequences) shown as \\xNN, and at most `limit` characters."""
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; the caller's own backoff applies


def _network_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timed out connecting to the server"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "the server stopped answering (read timed out)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Connection refused" in text or "Errno 111" in text:
            return "connection refused (is the server running?)"
        return f"connection failed or was cut: {text[:160]}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the response was cut off before its end"
    return f"{type(exc).__name__}: {str(exc)[:160]}"
