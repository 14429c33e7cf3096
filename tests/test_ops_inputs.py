"""Hostile inputs an operator meets on the open internet: deeply nested JSON, numbers spelled
two ways in a path, and floods of requests without a valid token or login."""

from __future__ import annotations

import base64
import time
import uuid

import requests
from helpers import Device, ServerProcess, chunk_path, error_of, evidence, registered_device

DEEP = 1000


def nested_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_json_nested_1000_deep_is_400_json_too_deep_everywhere(
        live_server: ServerProcess, device: Device) -> None:
    before = evidence(live_server.data_dir)
    encounter = str(uuid.uuid4())
    targets = [("POST", "/v1/accounts", {}), ("POST", "/v1/auth/challenge", {}),
               ("PUT", f"/v1/encounters/{encounter}", device.headers())]
    for method, path, headers in targets:
        for body in (nested_array(DEEP), nested_object(DEEP)):
            response = requests.request(method, live_server.url + path, data=body, timeout=10,
                                        headers={**headers, "Content-Type": "application/json"})
            assert error_of(response) == (400, "json_too_deep"), (path, response.text[:200])
            assert "32 levels" in response.json()["error"]["message"]
    assert evidence(live_server.data_dir) == before
    assert device.call("GET", f"/v1/encounters/{encounter}").status_code == 404


def test_brackets_inside_strings_do_not_count_as_nesting(live_server: ServerProcess) -> None:
    # A valid body whose string holds many brackets is judged on its fields, not refused.
    response = requests.post(live_server.url + "/v1/auth/challenge", timeout=10,
                             json={"device_id": "[" * DEEP + '"{' * 50})
    assert error_of(response) == (422, "invalid_request")


def test_seq_must_be_a_canonical_decimal(live_server: ServerProcess, device: Device) -> None:
    encounter = device.new_encounter()
    device.upload(encounter, "audio", 0)
    before = evidence(live_server.data_dir)
    body, note = device.seal(encounter, "audio", 7)
    for spelled in ("007", "07", "00", "\u0667"):  # the last: ARABIC-INDIC DIGIT SEVEN
        path = chunk_path(encounter, "audio", 7).rsplit("/", 1)[0] + "/" + spelled
        response = device.call("PUT", path, data=body, headers={
            "Content-Type": "application/octet-stream",
            "Safehold-Descriptor": base64.b64encode(note.encode()).decode()})
        assert error_of(response) == (400, "non_canonical_number"), spelled
        assert "leading zeros" in response.json()["error"]["message"]
        read = device.call("GET", chunk_path(encounter, "audio", 0).rsplit("/", 1)[0]
                           + "/" + spelled)
        assert error_of(read) == (400, "non_canonical_number"), spelled
    assert evidence(live_server.data_dir) == before
    checkpoint = f"/v1/encounters/{encounter}/log/checkpoints/"
    assert device.call("GET", checkpoint + "1").status_code == 200
    assert error_of(device.call("GET", checkpoint + "01")) == (400, "non_canonical_number")
    # The canonical spelling is taken as before.
    assert device.call("GET", chunk_path(encounter, "audio", 0)).status_code == 200
    assert device.put_chunk(encounter, "audio", 7, body, note).status_code == 201


def fake_token_get(server: ServerProcess, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(server.url + "/v1/encounters", headers=headers, timeout=10)


def test_failed_auth_is_rate_limited_per_address(make_server) -> None:
    server = make_server(env={"SAFEHOLD_AUTH_FAILURES_PER_MINUTE": "6"})
    phone = registered_device(server.url, server.name)
    answers = [fake_token_get(server, "bm90.cmVhbA") for _ in range(3)]
    answers += [fake_token_get(server, None) for _ in range(3)]
    assert [error_of(a)[0] for a in answers] == [401] * 6
    # The seventh failure from this address: 429 with the seconds to wait, for both kinds.
    for token in ("bm90.cmVhbA", None):
        refused = fake_token_get(server, token)
        assert error_of(refused) == (429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "valid token" in refused.json()["error"]["message"]
    # A failed login is a failure too, and is limited the same way.
    challenge = phone.challenge()
    wrong = phone.login_request(challenge, signature=phone.sign(b"not the login statement"))
    assert error_of(wrong) == (429, "rate_limited")
    # The logged-in device behind the same address is not held back.
    assert phone.call("GET", "/v1/encounters").status_code == 200


def test_a_flood_of_fake_tokens_is_cut_off_with_the_default_limit(make_server) -> None:
    server = make_server()
    session = requests.Session()
    statuses = []
    deadline = time.monotonic() + 20
    for _ in range(120):  # bounded in count and time
        if time.monotonic() > deadline:
            break
        statuses.append(session.get(server.url + "/v1/encounters", timeout=10,
                                    headers={"Authorization": "Bearer forged.token"}).status_code)
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= 31  # the default: 30 a minute per address, plus the refill
    assert statuses[-1] == 429
