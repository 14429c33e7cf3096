"""Registering a device, logging in, and building the client for a registered state folder.

Registration is safe to repeat after a crash or a network failure: the keys and ids are made
and written first, then sent; an identical repeat is answered 200 by the server. The server's
key is pinned on first contact (trust on first use; its fingerprint is shown to the user), and
the server must call itself by the host[:port] of the URL it was reached at.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import replace

from crypto import age
from crypto.signing import (
    generate_signing_key,
    key_fingerprint,
    key_name,
    sign_raw,
    verifier_key,
)
from schemas.statements import add_device_statement, login_statement, register_statement
from sync.api import DEFAULT_TIMEOUT, ApiClient, server_name_of
from sync.device.roster import publish_genesis
from sync.device.state import DEVICE_KEY, RECOVERY_KEY, Settings, StateFolder
from sync.errors import StateError, UntrustedServer
from sync.upload.outbox import now_rfc3339


def device_login(device_id: str, signing_key: str, server_name: str) -> Callable[[ApiClient], str]:
    """A token provider: answer a fresh challenge with the device key's signature."""

    def provide(api: ApiClient) -> str:
        challenge = str(api.challenge(device_id)["challenge"])
        signature = sign_raw(login_statement(server_name, device_id, challenge), signing_key)
        return str(api.token(device_id, challenge, signature)["token"])

    return provide


def pinned_server(api: ApiClient, url: str) -> tuple[str, str]:
    """Ask the server for its name and key; the name must be the URL's host[:port]."""
    info = api.server_info()
    name, key = str(info.get("name")), str(info.get("server_key"))
    expected = server_name_of(url)
    if name != expected:
        raise UntrustedServer(f"the server at {url} calls itself {name!r}, not {expected!r}; "
                              "its receipts would not match this address")
    return name, key


def _refuse_registered(state: StateFolder) -> None:
    settings = state.load_settings()
    if settings is not None and settings.registered:
        raise StateError(f"{state.path} already holds device {settings.device_id} registered "
                         f"with {settings.server_url}; use another --state folder")


def _pending_settings(state: StateFolder, url: str, own_recovery: bool = True) -> Settings:
    """Keys and ids for this device, made once and reused by every retry of registration."""
    _refuse_registered(state)
    settings = state.load_settings()
    if not state.has(DEVICE_KEY):
        device_id = str(uuid.uuid4())
        state.write_secret(DEVICE_KEY, generate_signing_key(f"device-{device_id}") + "\n")
    if own_recovery and not state.has(RECOVERY_KEY):
        identity = age.generate_identity()
        state.write_secret(RECOVERY_KEY, f"# created: {now_rfc3339()}\n# the owner's recovery "
                           f"identity\n# public key: {age.recipient_of(identity)}\n{identity}\n")
    signing_key = state.device_signing_key()
    device_key = verifier_key(signing_key)
    # The id lives in the key's name, so a crash before settings.json was written loses nothing.
    device_id = key_name(device_key).removeprefix("device-")
    if settings is None:
        settings = Settings(server_url=url, server_name="", server_key="",
                            server_fingerprint="", account_id=str(uuid.uuid4()),
                            device_id=device_id, device_key=device_key,
                            recovery_recipient=age.recipient_of(state.recovery_identity())
                            if own_recovery else "")
    return replace(settings, server_url=url.rstrip("/"))


def register(state: StateFolder, url: str,
             timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> Settings:
    """Create the account and this device on the server at `url`; pin the server's key."""
    _refuse_registered(state)
    # Reach the server before any key is made: a typo'd URL or a server that is down leaves
    # nothing behind. From here on the keys are kept, so a retry finishes the same account.
    api = ApiClient(url.rstrip("/"), timeout=timeout)
    name, key = pinned_server(api, url.rstrip("/"))
    settings = _pending_settings(state, url)
    settings = replace(settings, server_name=name, server_key=key,
                       server_fingerprint=key_fingerprint(key))
    state.save_settings(settings)
    message = register_statement(name, settings.account_id, settings.device_id,
                               settings.recovery_recipient)
    api.create_account({
        "account_id": settings.account_id, "device_id": settings.device_id,
        "device_key": settings.device_key, "recovery_recipient": settings.recovery_recipient,
        "signature": base64.b64encode(sign_raw(message, state.device_signing_key())).decode()})
    settings = replace(settings, registered=True)
    state.save_settings(settings)
    # The roster's genesis: this device, signed by itself (sync/device/roster.py). If it fails here,
    # the next sync or fetch sends it (ensure_roster).
    return publish_genesis(state, settings, client_for(state, settings, timeout))


def join(state: StateFolder, url: str, code: str,
         timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> Settings:
    """Add this device to an existing account with a code made on one of its devices.

    The account's recovery recipient comes from the server's answer; the owner should compare
    it with the one their first device shows (the server could otherwise swap in its own).
    """
    _refuse_registered(state)
    api = ApiClient(url.rstrip("/"), timeout=timeout)
    name, key = pinned_server(api, url.rstrip("/"))  # before any key is made, as in register
    settings = _pending_settings(state, url, own_recovery=False)
    settings = replace(settings, server_name=name, server_key=key,
                       server_fingerprint=key_fingerprint(key))
    state.save_settings(settings)
    signature = sign_raw(add_device_statement(name, settings.device_id, code),
                         state.device_signing_key())
    joined = api.add_device({"code": code, "device_id": settings.device_id,
                             "device_key": settings.device_key,
                             "signature": base64.b64encode(signature).decode()})
    settings = replace(settings, account_id=str(joined["account_id"]),
                       recovery_recipient=str(joined["recovery_recipient"]), registered=True)
    state.save_settings(settings)
    return settings


def device_invitation(state: StateFolder, settings: Settings,
                      timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> str:
    """A single-use code with which another device can join this account."""
    return str(client_for(state, settings, timeout).create_device_invitation()["code"])


def client_for(state: StateFolder, settings: Settings,
               timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> ApiClient:
    """An API client for a registered device that logs in by itself when needed."""
    login = device_login(settings.device_id, state.device_signing_key(), settings.server_name)
    return ApiClient(settings.server_url, token_provider=login, timeout=timeout)
