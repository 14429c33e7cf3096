"""Accounts, devices and login."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.accounts import (
    AccountResponseSchema,
    AddDeviceRequestSchema,
    AddDeviceResponseSchema,
    ChallengeRequestSchema,
    ChallengeResponseSchema,
    InvitationResponseSchema,
    RegisterRequestSchema,
    RegisterResponseSchema,
    TokenRequestSchema,
    TokenResponseSchema,
)
from server.api.common import caller, device_endpoint, public_endpoint, refusals
from server.context import services
from server.errors import not_found
from server.identity import accounts, auth

blp = Blueprint("accounts", __name__, url_prefix="/v1", description="Accounts, devices, login")

Reply = tuple[dict[str, Any], int]


@blp.route("/accounts")
class Accounts(MethodView):
    @public_endpoint(blp)
    @refusals(blp, 400, 409)
    @blp.arguments(RegisterRequestSchema)
    @blp.response(201, RegisterResponseSchema, description="account created")
    @blp.alt_response(200, schema=RegisterResponseSchema, description="already registered so")
    def post(self, body: dict[str, Any]) -> Reply:
        """Create an account with its first device (idempotent for the same keys)."""
        created = accounts.register(services(), **body)
        reply = {"account_id": body["account_id"], "device_id": body["device_id"]}
        return reply, 201 if created else 200


@blp.route("/auth/challenge")
class Challenge(MethodView):
    @public_endpoint(blp)
    @blp.arguments(ChallengeRequestSchema)
    @blp.response(200, ChallengeResponseSchema)
    def post(self, body: dict[str, Any]) -> dict[str, str]:
        """A single-use login challenge for a device (or a trusted contact) to sign."""
        challenge, expires_at = auth.issue_challenge(services(), body.get("device_id"),
                                                     body.get("contact_id"))
        return {"challenge": challenge, "expires_at": expires_at}


@blp.route("/auth/token")
class Token(MethodView):
    @public_endpoint(blp)
    @refusals(blp, 401)
    @blp.arguments(TokenRequestSchema)
    @blp.response(200, TokenResponseSchema)
    def post(self, body: dict[str, Any]) -> dict[str, str]:
        """Exchange a signed challenge for a short-lived bearer token."""
        token, expires_at = auth.issue_token(services(), body.get("device_id"),
                                             body["challenge"], body["signature"],
                                             body.get("contact_id"))
        return {"token": token, "expires_at": expires_at}


@blp.route("/devices/invitations")
class DeviceInvitations(MethodView):
    @device_endpoint(blp)
    @blp.response(201, InvitationResponseSchema)
    def post(self) -> dict[str, str]:
        """A single-use code with which another device can join this account."""
        code, expires_at = accounts.create_device_invitation(services(), caller())
        return {"code": code, "expires_at": expires_at}


@blp.route("/devices")
class Devices(MethodView):
    @public_endpoint(blp)
    @refusals(blp, 400, 409)
    @blp.arguments(AddDeviceRequestSchema)
    @blp.response(201, AddDeviceResponseSchema, description="device added")
    @blp.alt_response(200, schema=AddDeviceResponseSchema, description="already added so")
    def post(self, body: dict[str, Any]) -> Reply:
        """Add a device to the account an add-device code belongs to."""
        account, created = accounts.add_device(services(), **body)
        reply = {"account_id": account.account_id, "device_id": body["device_id"],
                 "recovery_recipient": account.recovery_recipient}
        return reply, 201 if created else 200


@blp.route("/account")
class Account(MethodView):
    @device_endpoint(blp)
    @blp.response(200, AccountResponseSchema)
    def get(self) -> dict[str, Any]:
        """The caller's account, its recovery recipient and devices."""
        with services().store.read() as tx:
            account = tx.account(caller().account_id)
            if account is None:
                raise not_found("This account no longer exists.")
            devices = tx.devices_of(account.account_id)
        return {"account_id": account.account_id,
                "recovery_recipient": account.recovery_recipient,
                "devices": [vars(d) for d in devices]}
