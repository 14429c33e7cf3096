"""Accounts, devices, login by signed challenge, bearer tokens, add-device codes."""

from __future__ import annotations

import time

import requests
from helpers import Device, ServerProcess, error_of, evidence, registered_device
from pgkit import rows_of

from crypto.signing import generate_signing_key, verifier_key
from schemas.statements import login_statement, register_statement


def test_register_creates_account_and_repeat_is_idempotent(live_server: ServerProcess) -> None:
    phone = Device(live_server.url, live_server.name)
    first = phone.register()
    assert first.status_code == 201
    assert first.json() == {"account_id": phone.account_id, "device_id": phone.device_id}
    again = phone.register()  # e.g. the first response was lost
    assert again.status_code == 200 and again.json() == first.json()


def test_register_refusals_leave_nothing(live_server: ServerProcess) -> None:
    taken = registered_device(live_server.url, live_server.name)
    before = evidence(live_server.data_dir)
    # The same account id (or device id) with other keys: 409, the owner's keys stay.
    thief = Device(live_server.url, live_server.name, account_id=taken.account_id)
    assert error_of(thief.register()) == (409, "account_exists")
    thief = Device(live_server.url, live_server.name, device_id=taken.device_id)
    assert error_of(thief.register()) == (409, "device_exists")
    # A signature made for another server, or with another key, is worthless here.
    stranger = Device(live_server.url, "safehold.example.org")
    assert error_of(stranger.register()) == (400, "bad_signature")
    forged = Device(live_server.url, live_server.name)
    body = forged.registration()
    body["device_key"] = verifier_key(generate_signing_key("someone-else"))
    response = requests.post(live_server.url + "/v1/accounts", json=body, timeout=5)
    assert error_of(response) == (400, "bad_signature")
    # Malformed keys and recipients.
    body = forged.registration()
    body["device_key"] = "not-a-key"
    response = requests.post(live_server.url + "/v1/accounts", json=body, timeout=5)
    assert error_of(response) == (400, "bad_key")
    body = forged.registration()
    body["recovery_recipient"] = "age1" + "q" * 58  # right shape, bad checksum
    response = requests.post(live_server.url + "/v1/accounts", json=body, timeout=5)
    assert error_of(response) == (400, "bad_recipient")
    assert evidence(live_server.data_dir)["rows"]["accounts"] == before["rows"]["accounts"]
    assert evidence(live_server.data_dir)["rows"]["devices"] == before["rows"]["devices"]


def test_login_gives_a_token_that_opens_the_account(device: Device) -> None:
    response = device.call("GET", "/v1/account")
    assert response.status_code == 200
    assert response.json()["account_id"] == device.account_id
    assert response.json()["recovery_recipient"] == device.recovery_recipient
    assert [d["device_id"] for d in response.json()["devices"]] == [device.device_id]
    assert response.json()["devices"][0]["device_key"] == device.device_key


def test_challenge_is_single_use_even_after_a_failed_attempt(device: Device) -> None:
    challenge = device.challenge()
    assert device.login_request(challenge).status_code == 200
    assert error_of(device.login_request(challenge)) == (401, "login_failed")
    challenge = device.challenge()
    wrong = device.sign(b"something else entirely\n")
    assert error_of(device.login_request(challenge, wrong)) == (401, "login_failed")
    assert error_of(device.login_request(challenge)) == (401, "login_failed")  # consumed


def test_login_signature_is_bound_to_server_and_action(device: Device) -> None:
    challenge = device.challenge()
    elsewhere = device.sign(login_statement("safehold.example.org", device.device_id, challenge))
    assert error_of(device.login_request(challenge, elsewhere)) == (401, "login_failed")
    challenge = device.challenge()
    # A registration-style signature over the same words is not a login.
    other_action = device.sign(register_statement(device.server_name, "login",
                                                  device.device_id, challenge))
    assert error_of(device.login_request(challenge, other_action)) == (401, "login_failed")


def test_challenge_of_another_device_cannot_be_used(device: Device, other_device: Device) -> None:
    challenge = other_device.challenge()
    assert error_of(device.login_request(challenge)) == (401, "login_failed")


def test_unknown_device_gets_a_challenge_but_no_token(live_server: ServerProcess) -> None:
    ghost = Device(live_server.url, live_server.name)  # never registered
    challenge = ghost.challenge()  # indistinguishable from a real device's
    assert error_of(ghost.login_request(challenge)) == (401, "login_failed")


def test_tokens_are_stored_hashed(live_server: ServerProcess, device: Device) -> None:
    assert device.token is not None
    token_id, secret = device.token.split(".")
    dump = str(rows_of(live_server.data_dir, ("accounts", "devices", "tokens", "login_challenges")))
    assert token_id in dump and secret not in dump and device.token not in dump
    # A token with the right id and a wrong secret is refused.
    device.token = f"{token_id}.{secret[:-2]}xx"
    assert error_of(device.call("GET", "/v1/account")) == (401, "invalid_token")


def test_tokens_challenges_and_codes_expire(make_server) -> None:
    server = make_server(env={"SAFEHOLD_TOKEN_TTL_SECONDS": "1",
                              "SAFEHOLD_CHALLENGE_TTL_SECONDS": "1",
                              "SAFEHOLD_INVITATION_TTL_SECONDS": "1"})
    phone = registered_device(server.url, server.name)
    code = phone.call("POST", "/v1/devices/invitations").json()["code"]
    stale_challenge = phone.challenge()
    time.sleep(1.2)
    assert error_of(phone.call("GET", "/v1/account")) == (401, "invalid_token")
    assert error_of(phone.login_request(stale_challenge)) == (401, "login_failed")
    tablet = Device(server.url, server.name)
    assert error_of(tablet.join(code)) == (400, "invalid_code")
    assert phone.login().call("GET", "/v1/account").status_code == 200


def test_second_device_joins_with_a_code(live_server: ServerProcess, device: Device) -> None:
    response = device.call("POST", "/v1/devices/invitations")
    assert response.status_code == 201
    code = response.json()["code"]
    tablet = Device(live_server.url, live_server.name)
    joined = tablet.join(code)
    assert joined.status_code == 201
    assert joined.json() == {"account_id": device.account_id, "device_id": tablet.device_id,
                             "recovery_recipient": device.recovery_recipient}
    assert tablet.join(code).status_code == 200  # the same device again: no-op
    tablet.login()
    encounter = device.new_encounter()
    assert tablet.call("GET", f"/v1/encounters/{encounter}").status_code == 200
    devices = device.call("GET", "/v1/account").json()["devices"]
    assert {d["device_id"] for d in devices} == {device.device_id, tablet.device_id}


def test_add_device_refusals_leave_nothing(live_server: ServerProcess, device: Device) -> None:
    code = device.call("POST", "/v1/devices/invitations").json()["code"]
    tablet = Device(live_server.url, live_server.name)
    assert tablet.join(code).status_code == 201
    latecomer = Device(live_server.url, live_server.name)
    assert error_of(latecomer.join(code)) == (400, "invalid_code")  # single use
    assert error_of(latecomer.join("made-up-code")) == (400, "invalid_code")
    fresh = device.call("POST", "/v1/devices/invitations").json()["code"]
    before = evidence(live_server.data_dir)
    impostor = Device(live_server.url, "safehold.example.org")  # signs for another server
    assert error_of(impostor.join(fresh)) == (400, "bad_signature")
    taken = Device(live_server.url, live_server.name, device_id=device.device_id)
    assert error_of(taken.join(fresh)) == (409, "device_exists")
    assert evidence(live_server.data_dir)["rows"]["devices"] == before["rows"]["devices"]
    assert Device(live_server.url, live_server.name).join(fresh).status_code == 201  # still good


def test_invitations_need_a_device_token(live_server: ServerProcess) -> None:
    response = requests.post(live_server.url + "/v1/devices/invitations", timeout=5)
    assert error_of(response) == (401, "auth_required")
