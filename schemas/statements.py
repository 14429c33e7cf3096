"""The exact byte strings devices sign for the server (docs/protocol.md, "HTTP API").

Each statement starts with a type tag and the server's name (its public host[:port]), so a
signature made for one server, or for one purpose, is worthless anywhere else. Shared by the
server (which verifies) and the client (which signs); stdlib only.
"""

from __future__ import annotations

REGISTER_TAG = "safehold-register/v1"
LOGIN_TAG = "safehold-login/v1"
ADD_DEVICE_TAG = "safehold-add-device/v1"
ACCEPT_INVITATION_TAG = "safehold-accept-invitation/v1"


def _lines(*lines: str) -> bytes:
    for line in lines:
        if "\n" in line:
            raise ValueError("statement fields may not contain newlines")
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def register_statement(server_name: str, account_id: str, device_id: str,
                       recovery_recipient: str) -> bytes:
    """Signed by the first device's key in POST /v1/accounts."""
    return _lines(REGISTER_TAG, server_name, account_id, device_id, recovery_recipient)


def login_statement(server_name: str, device_id: str, challenge: str) -> bytes:
    """Signed by a device's key in POST /v1/auth/token; the action word is `login`."""
    return _lines(LOGIN_TAG, server_name, "login", device_id, challenge)


def add_device_statement(server_name: str, device_id: str, code: str) -> bytes:
    """Signed by the new device's key in POST /v1/devices (the code names the account)."""
    return _lines(ADD_DEVICE_TAG, server_name, device_id, code)


def contact_login_statement(server_name: str, contact_id: str, challenge: str) -> bytes:
    """Signed by a trusted contact's key in POST /v1/auth/token; the action word differs from a
    device's, so neither signature can stand in for the other."""
    return _lines(LOGIN_TAG, server_name, "contact-login", contact_id, challenge)


def accept_invitation_statement(server_name: str, invitation_id: str, age_recipient: str,
                                contact_key: str) -> bytes:
    """Signed by the contact's new key in POST /v1/invitations/{id}/accept."""
    return _lines(ACCEPT_INVITATION_TAG, server_name, invitation_id, age_recipient, contact_key)
