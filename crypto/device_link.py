"""Linking a new device: the code an existing device shows, and the new device's proof.

    code  = <server code> "." <b64url(secret, 32 bytes), no padding> "." <genesis hash, 64 hex>

The server code (from POST /v1/devices/invitations) lets the new device register in the
account; the server sees it. The secret never reaches the server: with it the new device proves
that the key it registered is its own (the server cannot put in a key of its own), as

    proof = b64(HMAC-SHA256(HKDF-SHA256(secret, salt = empty, info = "safehold link device v1"),
                            "safehold.link-device/v1\\nserver <name>\\naccount <uuid>\\n"
                            "device <new device's verifier key>\\n"))

and the genesis hash lets the new device check the roster it is added to is the account's own
(crypto/roster.py). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from dataclasses import dataclass

from crypto.age.keys import hkdf_sha256
from crypto.errors import MalformedError

LINK_TAG = "safehold.link-device/v1"
PURPOSE = b"safehold link device v1"
SECRET_BYTES = 32
_SERVER_CODE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LinkCode:
    server_code: str
    secret: bytes
    genesis: str

    def text(self) -> str:
        secret = base64.urlsafe_b64encode(self.secret).decode("ascii").rstrip("=")
        return f"{self.server_code}.{secret}.{self.genesis}"

    @classmethod
    def parse(cls, text: str) -> LinkCode:
        parts = text.strip().split(".")
        if len(parts) != 3 or not _SERVER_CODE.fullmatch(parts[0]) \
                or not _HEX64.fullmatch(parts[2]):
            raise MalformedError("a link code is <server code>.<secret>.<genesis hash>, as "
                                 "`safehold device link` prints it")
        try:
            secret = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        except (binascii.Error, ValueError):
            raise MalformedError("the link code's secret is not base64url")
        if len(secret) != SECRET_BYTES or cls(parts[0], secret, parts[2]).text() != text.strip():
            raise MalformedError("the link code's secret is damaged")
        return cls(parts[0], secret, parts[2])


def new_link_code(server_code: str, genesis: str) -> LinkCode:
    return LinkCode(server_code, os.urandom(SECRET_BYTES), genesis)


def link_text(server: str, account: str, device_key: str) -> str:
    return f"{LINK_TAG}\nserver {server}\naccount {account}\ndevice {device_key}\n"


def link_proof(secret: bytes, server: str, account: str, device_key: str) -> str:
    key = hkdf_sha256(secret, b"", PURPOSE)
    digest = hmac.digest(key, link_text(server, account, device_key).encode("utf-8"), "sha256")
    return base64.b64encode(digest).decode("ascii")


def link_proof_matches(secret: bytes, server: str, account: str, device_key: str,
                       proof: object) -> bool:
    expected = link_proof(secret, server, account, device_key)
    return isinstance(proof, str) and hmac.compare_digest(expected.encode(),
                                                          proof.encode("utf-8", "replace"))
