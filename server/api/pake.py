"""Short-code invitations: nameplates and the PAKE relay (server/trust/pake.py)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.pake import (
    AllocateRequestSchema,
    ClaimRequestSchema,
    ContactMailboxSchema,
    OwnerMailboxSchema,
    ReplyRequestSchema,
)
from server.api.common import caller, device_endpoint, public_endpoint, refusals
from server.context import services
from server.trust import pake

blp = Blueprint("pake", __name__, url_prefix="/v1", description="Short-code invitations (PAKE)")

PAKE_PATH = "/pake/<string(length=22):pake_id>"
NAMEPLATE_PATH = "/nameplates/<string(maxlength=6):nameplate>"


@blp.route("/pake")
class Mailboxes(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 503)
    @blp.arguments(AllocateRequestSchema)
    @blp.response(201, OwnerMailboxSchema, description="a nameplate for a new short code")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Allocate a nameplate and store the owner's SPAKE2 message."""
        svc = services()
        return pake.owner_view(pake.allocate(svc, caller(), body), svc.now())


@blp.route(PAKE_PATH)
class Mailbox(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, OwnerMailboxSchema)
    def get(self, pake_id: str) -> dict[str, Any]:
        """The owner's view: has a contact claimed the code, with which message?"""
        svc = services()
        with svc.store.read() as tx:
            return pake.owner_view(pake.owned(tx, caller(), pake_id), svc.now())


@blp.route(PAKE_PATH + "/reply")
class MailboxReply(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 400, 404, 409)
    @blp.arguments(ReplyRequestSchema)
    @blp.response(200, OwnerMailboxSchema)
    def post(self, body: dict[str, Any], pake_id: str) -> dict[str, Any]:
        """The owner's outcome: done (confirmation + sealed invitation) or burned."""
        svc = services()
        return pake.owner_view(pake.reply(svc, caller(), pake_id, body), svc.now())


@blp.route(NAMEPLATE_PATH)
class Nameplate(MethodView):
    @public_endpoint(blp)
    @refusals(blp, 404, 410)
    @blp.response(200, ContactMailboxSchema)
    def get(self, nameplate: str) -> dict[str, Any]:
        """The contact's view: the owner's message, then its confirmation and sealed reply."""
        svc = services()
        with svc.store.read() as tx:
            return pake.contact_view(pake.by_nameplate(tx, _nameplate(nameplate), svc.now()))


@blp.route(NAMEPLATE_PATH + "/claim")
class NameplateClaim(MethodView):
    @public_endpoint(blp)
    @refusals(blp, 404, 409, 410)
    @blp.arguments(ClaimRequestSchema)
    @blp.response(200, ContactMailboxSchema)
    def post(self, body: dict[str, Any], nameplate: str) -> dict[str, Any]:
        """The contact's SPAKE2 message and confirmation; the first claim is the only one."""
        return pake.contact_view(pake.claim(services(), _nameplate(nameplate), body))


def _nameplate(value: str) -> str:
    import re

    from schemas.pake import NAMEPLATE_PATTERN
    from server.errors import not_found

    if not re.fullmatch(NAMEPLATE_PATTERN, value):
        raise not_found("There is no such short code; check the number.")
    return value
