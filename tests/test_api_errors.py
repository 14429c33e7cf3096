"""One error envelope for every failure: ours, routing, validation, limits, and crashes."""

from __future__ import annotations

import http.client
import sqlite3

import pytest
import requests
from helpers import Device, ServerProcess, error_of, evidence, registered_device


def test_unknown_route_is_a_json_404(live_server: ServerProcess) -> None:
    response = requests.get(live_server.url + "/v1/no/such/thing", timeout=5)
    assert error_of(response) == (404, "not_found")
    assert response.headers["Content-Type"] == "application/json"


def test_wrong_method_is_405_with_allow(live_server: ServerProcess) -> None:
    response = requests.delete(live_server.url + "/v1/server", timeout=5)
    assert error_of(response) == (405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}


def test_invalid_body_is_422_invalid_request_with_field_details(live_server: ServerProcess) -> None:
    response = requests.post(live_server.url + "/v1/accounts", timeout=5,
                             json={"account_id": "not-a-uuid", "extra": 1})
    assert error_of(response) == (422, "invalid_request")
    details = response.json()["error"]["details"]["json"]
    assert "account_id" in details and "extra" in details and "device_key" in details


def test_malformed_json_is_refused_in_the_envelope(live_server: ServerProcess) -> None:
    response = requests.post(live_server.url + "/v1/auth/challenge", data=b"{nope",
                             headers={"Content-Type": "application/json"}, timeout=5)
    status, code = error_of(response)
    assert (status, code) in {(400, "bad_request"), (422, "invalid_request")}


def test_oversized_json_body_is_413_before_it_is_read(live_server: ServerProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    # Headers only: the server must answer without waiting for the 10 MB it was promised.
    conn.putrequest("POST", "/v1/accounts")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(10_000_000))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    body = response.read()
    conn.close()
    assert b'"too_large"' in body


def test_auth_codes(live_server: ServerProcess) -> None:
    url = live_server.url + "/v1/encounters"
    assert error_of(requests.get(url, timeout=5)) == (401, "auth_required")
    for header in ("Bearer nonsense", "Bearer a.b", "Basic dXNlcjpwYXNz", "Bearer "):
        response = requests.get(url, headers={"Authorization": header}, timeout=5)
        assert error_of(response) in {(401, "invalid_token"), (401, "auth_required")}, header
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_rate_limit_is_429_with_retry_after_and_stores_nothing(make_server) -> None:
    server = make_server(env={"SAFEHOLD_RATE_PER_MINUTE": "4"})
    phone = registered_device(server.url, server.name)  # 3 requests from this address
    encounter = phone.new_encounter()  # the device's own bucket: 1 of 4
    phone.upload(encounter, "audio", 0)  # 2 of 4
    assert phone.call("GET", f"/v1/encounters/{encounter}").status_code == 200  # 3 of 4
    assert phone.call("GET", "/v1/encounters").status_code == 200  # 4 of 4
    before = evidence(server.data_dir)
    body, note = phone.seal(encounter, "audio", 1)
    response = phone.put_chunk(encounter, "audio", 1, body, note)
    assert error_of(response) == (429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert evidence(server.data_dir) == before
    # Requests without a token are limited per address: 3 spent registering, 1 left.
    ask = {"url": server.url + "/v1/auth/challenge", "json": {"device_id": phone.device_id},
           "timeout": 5}
    assert requests.post(**ask).status_code == 200
    assert error_of(requests.post(**ask)) == (429, "rate_limited")


@pytest.mark.sqlite_only("breaks the server's SQLite file to provoke an internal error")
def test_unexpected_failure_is_a_500_envelope_without_internals(make_server) -> None:
    server = make_server()
    phone = registered_device(server.url, server.name)
    # Break the database under the running server (a real fault, not a mock).
    db = sqlite3.connect(server.data_dir / "safehold.sqlite3")
    db.execute("DROP TABLE changes")
    db.commit()
    db.close()
    response = phone.call("GET", "/v1/changes")
    assert error_of(response) == (500, "internal_error")
    assert "sqlite" not in response.text.lower() and "Traceback" not in response.text
    assert "Traceback" in server.output()  # ... but the operator sees what happened


def test_every_envelope_is_exact(device: Device) -> None:
    """The same shape for a refusal of ours as for the framework's."""
    ours = device.call("GET", "/v1/encounters/00000000-0000-4000-8000-000000000000")
    theirs = device.call("PATCH", "/v1/encounters")
    assert error_of(ours) == (404, "not_found")
    assert error_of(theirs) == (405, "method_not_allowed")
