"""The device roster on the client: publish the genesis, check the served chain, link devices.

Who trusts what (docs/protocol.md, "Device roster"):
- the owner's device pins its roster's genesis hash at registration (it signed the genesis
  itself, or the device that linked it vouched for it in the link code) and the largest roster
  it has verified (size and head hash): a served roster must start from that genesis and extend
  that head;
- a contact's app accepts the roster whose first statements are exactly the device keys the
  invitation proved, and then every device those devices added.
A device key the server lists but the roster does not hold is trusted by nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from crypto.errors import CryptoError
from crypto.roster import (
    Roster,
    RosterError,
    check_extends,
    check_proven_devices,
    genesis_statement,
    open_roster,
    sign_statement,
)
from sync.api import ApiClient
from sync.device.state import Settings, StateFolder
from sync.errors import ServerRefusal, StateError, UntrustedServer
from sync.people.contact_state import ContactState, Membership


def served_notes(api: ApiClient) -> list[str]:
    answer = api.json("GET", "/v1/roster", auth=True)
    notes = answer.get("statements")
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise UntrustedServer("the server's roster answer is not a list of statements")
    return notes


def publish_genesis(state: StateFolder, settings: Settings, api: ApiClient) -> Settings:
    """Sign and send this device's genesis statement; pin it. Safe to repeat."""
    statement = genesis_statement(settings.server_name, settings.account_id,
                                  settings.device_key, settings.recovery_recipient)
    note = sign_statement(statement, state.device_signing_key())
    api.json("POST", "/v1/roster", auth=True, json_body={"statement": note})
    roster = open_roster([note], settings.server_name, account=settings.account_id)
    settings = replace(settings, roster_genesis=roster.genesis_hash, roster_size=1,
                       roster_head=roster.head_hash)
    state.save_settings(settings)
    return settings


def owner_roster(api: ApiClient, settings: Settings) -> Roster:
    """The account's roster as served, verified from the pinned genesis and extending the
    largest roster seen; this device must be in it."""
    try:
        roster = open_roster(served_notes(api), settings.server_name,
                             genesis_hash=settings.roster_genesis, account=settings.account_id)
        check_extends(roster, settings.roster_size, settings.roster_head)
    except RosterError as exc:
        raise UntrustedServer(f"the server's device roster does not verify: {exc}; no device "
                              "key from it was trusted")
    if settings.device_key not in roster.devices:
        raise UntrustedServer(f"the server's device roster does not hold this device "
                              f"({settings.device_id}); nothing from it was trusted")
    return roster


def remember(state: StateFolder, settings: Settings, roster: Roster) -> Settings:
    """Pin the larger roster: a later, shorter one is a rollback."""
    if roster.size <= settings.roster_size:
        return settings
    settings = replace(settings, roster_size=roster.size, roster_head=roster.head_hash)
    state.save_settings(settings)
    return settings


def ensure_roster(state: StateFolder, settings: Settings, api: ApiClient) -> tuple[Roster,
                                                                                  Settings]:
    """The verified roster; a device registered before rosters existed starts one first (an
    empty roster) or pins the one that holds it (trust on first use, said in the docs)."""
    if not settings.roster_genesis:
        notes = served_notes(api)
        if not notes:
            settings = publish_genesis(state, settings, api)
        else:
            try:
                found = open_roster(notes, settings.server_name, account=settings.account_id)
            except RosterError as exc:
                raise UntrustedServer(f"the server's device roster does not verify: {exc}")
            if settings.device_key not in found.devices:
                raise StateError("this account's roster was started without this device; "
                                 "link it again from a device in the roster (safehold device "
                                 "link)")
            settings = replace(settings, roster_genesis=found.genesis_hash)
            state.save_settings(settings)
    roster = owner_roster(api, settings)
    return roster, remember(state, settings, roster)


def member_roster(state: ContactState, membership: Membership, api: ApiClient) -> Roster:
    """The owner's roster for a contact's membership; the larger one is remembered."""
    roster = contact_roster(api, membership.server_name, membership.owner_device_keys,
                            (membership.roster_size, membership.roster_head))
    if roster.size > membership.roster_size:
        state.save_membership(replace(membership, roster_size=roster.size,
                                      roster_head=roster.head_hash))
    return roster


def contact_roster(api: ApiClient, server_name: str, proven_keys: Sequence[str],
                   seen: tuple[int, str] = (0, "")) -> Roster:
    """The owner's roster for a contact: it must begin with exactly the proven device keys and
    extend the largest one this contact verified before (`seen`: size and head hash)."""
    try:
        roster = open_roster(served_notes(api), server_name)
        check_proven_devices(roster, proven_keys)
        check_extends(roster, *seen)
    except ServerRefusal as exc:
        raise UntrustedServer(f"the server did not serve the owner's device roster: {exc}")
    except (RosterError, CryptoError) as exc:
        raise UntrustedServer(f"the owner's device roster does not verify: {exc}; no device "
                              "key from it was trusted")
    return roster
