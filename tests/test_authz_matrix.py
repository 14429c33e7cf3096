"""Every endpoint against every role, each cell with its expected status and error code.

Roles: the owner's device; another account's device; trusted contacts before and after release
under each policy (immediate, on_alert, check_in — including a safe mark in time); a revoked
contact; a contact its owner never confirmed; a forged token; no token; and, once the clock has
moved past their lifetime, expired tokens. Time is injected (the app's CLOCK), and the server is
the real app over HTTP on loopback.

Every refusal must be exactly the error envelope and carry no byte of the owner's data; a
contact that may not read an encounter gets byte for byte the answer given for an encounter
that does not exist.

The deletion endpoints run against the same roles in a world of their own, in each state of
the target's deletion (none ever asked, scheduled, held): a refusal must leave that state as it
was, and no answer may say which contact held a deletion.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from contactkit import Invitee, add_contact, rfc3339
from helpers import Device, error_of, registered_device
from notifykit import AppServer

from schemas.statements import login_statement

TOKEN_TTL = 3600


@dataclass
class World:
    server: AppServer
    owner: Device
    other: Device
    contacts: dict[str, Invitee]
    encounters: dict[str, str]
    uploads: dict[str, tuple[bytes, str]]  # encounter -> (age body, descriptor note)


def build_world(server: AppServer) -> World:
    clock = server.clock
    owner = registered_device(server.url, server.name)
    other = registered_device(server.url, server.name)
    other.upload(other.new_encounter(started_at=rfc3339(clock.now)), "audio", 0)
    encounters: dict[str, str] = {}
    uploads: dict[str, tuple[bytes, str]] = {}

    def record(label: str) -> str:
        encounter = owner.new_encounter(started_at=rfc3339(clock.now))
        _receipt, body, note = owner.upload(encounter, "audio", 0, final=True)
        encounters[label], uploads[encounter] = encounter, (body, note)
        return encounter

    record("before_contacts")  # recorded before anyone was invited
    clock.advance(1)
    contacts = {
        "immediate": add_contact(owner, "immediate", name="Imm", now=clock.now),
        "on_alert": add_contact(owner, "on_alert", name="Alerted", now=clock.now),
        "check_in": add_contact(owner, "check_in", 10, name="Checker", now=clock.now),
        "revoked": add_contact(owner, "immediate", name="Gone", now=clock.now),
        "pending": add_contact(owner, "immediate", name="Unconfirmed", confirm=False,
                               now=clock.now),
        # `safehold device share`: joined after it was recorded, may read that one only
        "share": add_contact(owner, "immediate", name="Lawyer", now=clock.now,
                             encounter=encounters["before_contacts"]),
    }
    assert owner.call("DELETE", f"/v1/contacts/{contacts['revoked'].contact_id}").ok
    record("due")  # check_in: nobody marks safe
    safe = record("safe")  # check_in: safe in time
    assert owner.call("POST", f"/v1/encounters/{safe}/safe").status_code == 201
    clock.advance(11 * 60)  # past both check-in deadlines
    record("plain")  # started now: no deadline passed, no alert
    alerted = record("alerted")
    assert owner.call("POST", f"/v1/encounters/{alerted}/alert").status_code == 201
    return World(server, owner, other, contacts, encounters, uploads)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = AppServer(tmp_path_factory.mktemp("matrix") / "data",
                       settings={"TOKEN_TTL_SECONDS": TOKEN_TTL}).start()
    yield build_world(server)
    server.stop()


@pytest.fixture
def deletion_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same roles in a world of its own: deletion requests announce themselves in the
    contacts' feeds and in encounter bodies, which must not touch the shared world's cells."""
    server = AppServer(tmp_path_factory.mktemp("deletion-matrix") / "data",
                       settings={"TOKEN_TTL_SECONDS": TOKEN_TTL}).start()
    yield build_world(server)
    server.stop()


@dataclass(frozen=True)
class Role:
    name: str
    kind: str  # owner | other | contact | forged | none
    target: str  # which encounter it asks for
    visible: bool = False  # for contacts: released to it


ROLES = [
    Role("other account's device", "other", "plain"),
    Role("immediate contact, after release", "contact:immediate", "plain", True),
    Role("immediate contact, recorded before it joined", "contact:immediate", "before_contacts"),
    Role("on_alert contact, before the alert", "contact:on_alert", "plain"),
    Role("on_alert contact, after the alert", "contact:on_alert", "alerted", True),
    Role("check_in contact, before the deadline", "contact:check_in", "plain"),
    Role("check_in contact, after the deadline", "contact:check_in", "due", True),
    Role("check_in contact, safe mark in time", "contact:check_in", "safe"),
    Role("revoked contact", "contact:revoked", "plain"),
    Role("share recipient, her encounter (recorded before she joined)", "contact:share",
         "before_contacts", True),
    Role("share recipient, another encounter", "contact:share", "plain"),
    Role("share recipient, an encounter released to every other contact", "contact:share",
         "alerted"),
    Role("unconfirmed contact", "contact:pending", "plain"),
    Role("forged token", "forged", "plain"),
    Role("no token", "none", "plain"),
    # Last, and on the encounter already alerted: its alert/safe marks change nothing for
    # the cells above or the tests below.
    Role("owner's device", "owner", "alerted"),
]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {e} = the encounter, {c} = a contact of the owner, {r} = the revoked contact
    group: str  # read | write | device | owner_contact | feed | contact_only | public | roster
    owner_status: int = 200
    body: str = ""  # "put_encounter" | "chunk" | "empty"

    def url_path(self, world: World, encounter: str) -> str:
        return self.path.format(e=encounter, c=world.contacts["immediate"].contact_id,
                                r=world.contacts["revoked"].contact_id)


LOG = "/v1/encounters/{e}/log"
ENDPOINTS = [
    Endpoint("GET", "/v1/encounters/{e}", "read"),
    Endpoint("GET", "/v1/encounters/{e}/streams/audio/chunks/0", "read"),
    Endpoint("GET", "/v1/encounters/{e}/streams/audio/chunks/0/receipt", "read"),
    Endpoint("GET", LOG + "/checkpoint", "read"),
    Endpoint("GET", LOG + "/checkpoints/1", "read"),
    Endpoint("GET", LOG + "/consistency?first=1&second=1", "read"),
    Endpoint("GET", LOG + "/inclusion?index=0&tree_size=1", "read"),
    Endpoint("GET", LOG + "/leaves?start=0&end=1", "read"),
    Endpoint("GET", "/v1/encounters/{e}/streams/audio/receipts", "read"),  # batch (issue 9)
    Endpoint("GET", "/v1/encounters/{e}/streams/audio/pack?start=0&end=1", "read"),
    Endpoint("GET", "/v1/encounters/{e}/grants", "read"),  # one-encounter shares (issue 11)
    Endpoint("POST", "/v1/encounters/{e}/grants", "device", 422, "empty"),
    Endpoint("PUT", "/v1/encounters/{e}", "write", 200, "put_encounter"),
    Endpoint("PUT", "/v1/encounters/{e}/streams/audio/chunks/0", "write", 200, "chunk"),
    Endpoint("POST", "/v1/encounters/{e}/alert", "write", 201),
    Endpoint("POST", "/v1/encounters/{e}/safe", "write", 201),
    Endpoint("GET", "/v1/encounters/{e}/access-log", "write"),
    Endpoint("GET", "/v1/account", "device"),
    Endpoint("POST", "/v1/devices/invitations", "device", 201, "empty"),
    Endpoint("GET", "/v1/encounters", "device"),
    Endpoint("GET", "/v1/contacts", "device"),
    Endpoint("POST", "/v1/contacts/invitations", "device", 422, "empty"),
    Endpoint("GET", "/v1/contacts/{c}", "owner_contact"),
    Endpoint("PATCH", "/v1/contacts/{c}", "owner_contact", 200, "rename"),
    Endpoint("POST", "/v1/contacts/{c}/confirm", "owner_contact"),
    Endpoint("DELETE", "/v1/contacts/{r}", "owner_contact"),
    Endpoint("GET", "/v1/changes", "feed"),
    Endpoint("GET", "/v1/contact", "contact_only"),
    Endpoint("GET", "/v1/released", "contact_only"),
    Endpoint("GET", "/v1/server", "public"),
    Endpoint("GET", "/v1/roster", "roster"),
    Endpoint("POST", "/v1/roster", "device", 422, "empty"),
    Endpoint("GET", "/v1/roster/requests", "device"),
    Endpoint("POST", "/v1/roster/requests", "device", 422, "empty"),
    Endpoint("GET", "/v1/roster/contacts", "device"),
    Endpoint("PUT", "/v1/roster/contacts", "device", 422, "empty"),
]
# Last: the owner's DELETE of the encounter is the one cell that leaves the "none" state.
DELETION_ENDPOINTS = [
    Endpoint("GET", "/v1/encounters/{e}/deletion", "deletion_status"),
    Endpoint("POST", "/v1/encounters/{e}/hold", "deletion_hold"),
    Endpoint("DELETE", "/v1/encounters/{e}/deletion", "deletion_cancel"),
    Endpoint("DELETE", "/v1/encounters/{e}", "deletion_request", 202),
]
DELETION_STATES = ["none", "scheduled", "held"]  # "none": no deletion ever requested
ACTIVE_CONTACTS = ("contact:immediate", "contact:on_alert", "contact:check_in",
                   "contact:share")


def expected(role: Role, endpoint: Endpoint) -> tuple[int, str | None]:
    if endpoint.group == "public":
        return 200, None
    if role.kind in ("forged", "none"):
        return 401, "invalid_token" if role.kind == "forged" else "auth_required"
    if role.kind.startswith("contact"):
        if endpoint.group == "roster":  # the owner's device keys, for active contacts only
            return (200, None) if role.kind in ACTIVE_CONTACTS else (404, "not_found")
        if endpoint.group == "read":
            return (200, None) if role.visible else (404, "not_found")
        if endpoint.group in ("feed", "contact_only"):
            return 200, None
        return 403, "devices_only"
    if endpoint.group == "contact_only":
        return 403, "contacts_only"
    if role.kind == "other" and endpoint.body == "put_encounter":
        # Ids are made on phones: another account's PUT of a taken id cannot create it, and a
        # 404 would be a lie for an id that is free. (Unguessable UUIDs; nothing else shown.)
        return 409, "encounter_taken"
    if role.kind == "other" and endpoint.group in ("read", "write", "owner_contact"):
        return 404, "not_found"
    status = endpoint.owner_status
    return status, "invalid_request" if status == 422 else None


def expected_for_deletion(role: Role, endpoint: Endpoint, state: str) -> tuple[int, str | None]:
    """Deletion is for the owner's devices to ask and cancel, and for every active contact of
    the owner to see and hold, whether or not the encounter was released to it, once a deletion
    has been announced to it. Before that, a contact the encounter was not released to learns
    nothing: it gets exactly the answer for an encounter that does not exist."""
    group = endpoint.group
    if role.kind in ("forged", "none"):
        return 401, "invalid_token" if role.kind == "forged" else "auth_required"
    if role.kind.startswith("contact"):
        if group in ("deletion_request", "deletion_cancel"):
            return 403, "devices_only"
        if role.kind == "contact:share" and not role.visible:
            return 404, "not_found"  # never told of another encounter's deletion
        if role.kind not in ACTIVE_CONTACTS or (state == "none" and not role.visible):
            return 404, "not_found"
    elif group == "deletion_hold":
        return 403, "contacts_only"
    elif role.kind == "other":
        return 404, "not_found"
    if state == "none":
        if group == "deletion_status":
            return 404, "no_deletion"
        if group in ("deletion_hold", "deletion_cancel"):
            return 409, "no_deletion_scheduled"
    if group == "deletion_request" and state == "held":
        return 409, "deletion_held"
    return endpoint.owner_status, None


def token_of(world: World, role: Role) -> str | None:
    if role.kind == "owner":
        return world.owner.token
    if role.kind == "other":
        return world.other.token
    if role.kind == "forged":
        return "bm90LWEtdG9rZW4.Zm9yZ2VkLXNlY3JldC10aGF0LWxvb2tzLXJlYWw"
    if role.kind == "none":
        return None
    return world.contacts[role.kind.split(":")[1]].token


def send(world: World, token: str | None, endpoint: Endpoint,
         encounter: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {}
    if endpoint.body == "put_encounter":
        kwargs["json"] = {"started_at": "2026-11-18T11:06:41.000Z"}
    elif endpoint.body in ("empty", "rename"):
        kwargs["json"] = {"name": "Imm"} if endpoint.body == "rename" else {}
    elif endpoint.body == "chunk":
        body, note = world.uploads.get(encounter, (b"not age", "bm90ZQ=="))
        kwargs["data"] = body
        headers |= {"Content-Type": "application/octet-stream",
                    "Safehold-Descriptor": base64.b64encode(note.encode()).decode()}
    return requests.request(endpoint.method, world.server.url + endpoint.url_path(
        world, encounter), headers=headers, timeout=30, **kwargs)


def owner_secrets(world: World) -> list[str]:
    """Strings only the owner (and those it released to) may ever see."""
    secrets = [world.owner.account_id, world.owner.device_id, world.owner.recovery_recipient,
               world.owner.device_key.split("+", 2)[2], *world.encounters.values()]
    for invitee in world.contacts.values():
        secrets += [str(invitee.contact_id), invitee.recipient]
    secrets += ["Imm", "Alerted", "Checker", "Gone", "Unconfirmed", "Lawyer"]
    for body, note in world.uploads.values():
        secrets += [note.split("sha256 ")[1][:64], base64.b64encode(body[-48:]).decode()]
    assert all(len(secret) >= 3 for secret in secrets), secrets
    return secrets


def assert_leaks_nothing(response: requests.Response, secrets: list[str], cell: str) -> None:
    seen = response.content.decode("utf-8", "replace") + repr(dict(response.headers))
    for secret in secrets:
        assert secret not in seen, f"{cell}: the answer shows {secret!r}"


def test_every_endpoint_against_every_role(world: World) -> None:
    secrets = owner_secrets(world)
    nowhere = str(uuid.uuid4())
    failures = []
    for role in ROLES:
        token = token_of(world, role)
        encounter = world.encounters[role.target]
        for endpoint in ENDPOINTS:
            cell = f"{role.name} x {endpoint.method} {endpoint.path}"
            want = expected(role, endpoint)
            response = send(world, token, endpoint, encounter)
            if response.status_code >= 400:
                got: tuple[int, str | None] = error_of(response)
                assert_leaks_nothing(response, secrets, cell)
                unreleased = role.kind.startswith("contact") and not role.visible
                if "{e}" in endpoint.path and (unreleased or (
                        got == (404, "not_found") and endpoint.group in ("read", "write"))):
                    # exactly what an encounter that does not exist gets
                    missing = send(world, token, endpoint, nowhere)
                    assert (missing.status_code, missing.content) == \
                        (response.status_code, response.content), cell
            else:
                got = (response.status_code, None)
                if role.kind == "other":
                    assert_leaks_nothing(response, secrets, cell)
            if got != want:
                failures.append(f"{cell}: expected {want}, got {got}: {response.text[:120]}")
    assert not failures, "\n".join(failures)


def deletion_now(world: World, encounter: str) -> tuple[int, Any]:
    """The owner's view of the encounter's latest deletion request."""
    response = world.owner.call("GET", f"/v1/encounters/{encounter}/deletion")
    return response.status_code, response.json()


def bring_deletion_to(world: World, encounter: str, state: str) -> None:
    if state == "none":  # cannot be restored: the "none" cells run first, the owner's last
        assert error_of(world.owner.call("GET", f"/v1/encounters/{encounter}/deletion")) == \
            (404, "no_deletion")
        return
    world.owner.call("DELETE", f"/v1/encounters/{encounter}/deletion")  # 200, or 409: none
    assert world.owner.call("DELETE", f"/v1/encounters/{encounter}").status_code == 202
    if state == "held":
        hold = world.contacts["immediate"].call("POST", f"/v1/encounters/{encounter}/hold")
        assert hold.status_code == 200, hold.text
    assert deletion_now(world, encounter)[1]["state"] == state


STATE_AFTER = {"deletion_hold": "held", "deletion_cancel": "cancelled",
               "deletion_request": "scheduled"}


def check_deletion_cell(world: World, role: Role, endpoint: Endpoint, state: str,
                        secrets: list[str]) -> str | None:
    """Run one cell; a refusal must change nothing and show nothing, an answer must name no
    contact (the owner is not told who held it)."""
    encounter = world.encounters[role.target]
    cell = f"{role.name} x {endpoint.method} {endpoint.path} [{state}]"
    bring_deletion_to(world, encounter, state)
    before = deletion_now(world, encounter)
    response = send(world, token_of(world, role), endpoint, encounter)
    want = expected_for_deletion(role, endpoint, state)
    if response.status_code >= 400:
        got: tuple[int, str | None] = error_of(response)
        assert_leaks_nothing(response, secrets, cell)
        assert deletion_now(world, encounter) == before, f"{cell}: a refusal changed the state"
        # Not released and not yet told of a deletion: exactly what a missing id gets.
        untold = role.kind.startswith("contact") and not role.visible and state == "none"
        if got == (404, "not_found") or untold:
            missing = send(world, token_of(world, role), endpoint, str(uuid.uuid4()))
            assert (missing.status_code, missing.content) == \
                (response.status_code, response.content), cell
    else:
        got = (response.status_code, None)
        shown = [secret for secret in secrets if secret not in world.encounters.values()]
        assert_leaks_nothing(response, shown, cell)
        assert response.json()["encounter_id"] == encounter, cell
        after = STATE_AFTER.get(endpoint.group, before[1].get("state"))
        assert deletion_now(world, encounter)[1]["state"] == after, cell
    return None if got == want else f"{cell}: expected {want}, got {got}: {response.text[:120]}"


def test_deletion_endpoints_against_every_role(deletion_world: World) -> None:
    secrets = owner_secrets(deletion_world)
    failures = [
        failure
        for state in DELETION_STATES
        for role in ROLES
        for endpoint in DELETION_ENDPOINTS
        if (failure := check_deletion_cell(deletion_world, role, endpoint, state, secrets))
    ]
    assert not failures, "\n".join(failures)


def test_contacts_list_and_follow_exactly_what_was_released_to_them(world: World) -> None:
    enc = world.encounters
    released = {
        "immediate": {enc["due"], enc["safe"], enc["plain"], enc["alerted"]},
        "on_alert": {enc["alerted"]},
        "check_in": {enc["due"], enc["alerted"]},
        "revoked": set(), "pending": set(), "share": {enc["before_contacts"]},
    }
    for name, invitee in world.contacts.items():
        listed = invitee.call("GET", "/v1/released").json()["encounters"]
        assert {e["encounter_id"] for e in listed} == released[name], name
        feed = invitee.call("GET", "/v1/changes", params={"limit": 1000}).json()
        assert {c["encounter_id"] for c in feed["changes"]} == released[name], name
        assert {c["encounter_id"] for c in feed["changes"] if c["kind"] == "released"} == \
            released[name], name


def test_expired_tokens_are_refused_everywhere(world: World) -> None:
    world.server.clock.advance(TOKEN_TTL + 1)  # past the tokens' lifetime
    holders = [world.owner.token, world.other.token,
               *(invitee.token for invitee in world.contacts.values())]
    for token in holders:
        for endpoint in ENDPOINTS + DELETION_ENDPOINTS:
            if endpoint.group == "public":
                continue
            response = send(world, token, endpoint, world.encounters["due"])
            assert error_of(response) == (401, "invalid_token"), endpoint.path
    # A fresh login works again.
    assert world.owner.login().call("GET", "/v1/account").status_code == 200
    checker = world.contacts["check_in"].login()
    assert checker.call("GET", f"/v1/encounters/{world.encounters['due']}").status_code == 200


def test_a_device_signature_cannot_log_in_a_contact(world: World) -> None:
    invitee = world.contacts["immediate"]
    challenge = invitee.session.post(f"{world.server.url}/v1/auth/challenge", timeout=10,
                                     json={"contact_id": invitee.contact_id}).json()["challenge"]
    # The owner's device signs the device login statement for the contact's id: refused.
    statement = login_statement(world.server.name, str(invitee.contact_id), challenge)
    response = requests.post(f"{world.server.url}/v1/auth/token", timeout=10, json={
        "contact_id": invitee.contact_id, "challenge": challenge,
        "signature": world.owner.sign(statement)})
    assert error_of(response) == (401, "login_failed")
    both = requests.post(f"{world.server.url}/v1/auth/challenge", timeout=10, json={
        "contact_id": invitee.contact_id, "device_id": world.owner.device_id})
    assert error_of(both) == (422, "invalid_request")
