"""The device roster: what the account's devices signed, stored and served (never extended)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.roster import (
    ContactSetRequestSchema,
    ContactSetResponseSchema,
    LinkRequestListSchema,
    LinkRequestSchema,
    RosterResponseSchema,
    RosterStatementRequestSchema,
    RosterStatementResponseSchema,
)
from server.api.common import caller, device_endpoint, reader_endpoint, refusals
from server.context import services
from server.identity import roster, roster_contacts

blp = Blueprint("roster", __name__, url_prefix="/v1", description="Device roster")

Reply = tuple[dict[str, Any], int]


@blp.route("/roster")
class Roster(MethodView):
    @reader_endpoint(blp)
    @blp.response(200, RosterResponseSchema)
    def get(self) -> dict[str, Any]:
        """The account's device roster (a contact gets its owner's)."""
        who = caller()
        return {"account_id": who.account_id, "statements": roster.roster_notes(services(), who)}

    @device_endpoint(blp)
    @refusals(blp, 400, 409)
    @blp.arguments(RosterStatementRequestSchema)
    @blp.response(201, RosterStatementResponseSchema, description="appended")
    @blp.alt_response(200, schema=RosterStatementResponseSchema, description="already there")
    def post(self, body: dict[str, Any]) -> Reply:
        """Append a statement signed by a device already in the roster (or the genesis)."""
        seq, hash_hex, created = roster.append_statement(services(), caller(), body["statement"])
        return {"seq": seq, "hash": hash_hex}, 201 if created else 200


@blp.route("/roster/requests")
class LinkRequests(MethodView):
    @device_endpoint(blp)
    @blp.response(200, LinkRequestListSchema)
    def get(self) -> dict[str, Any]:
        """New devices of the account that asked to be linked and are not in the roster yet."""
        return {"requests": roster.link_requests(services(), caller())}

    @device_endpoint(blp)
    @refusals(blp, 409)
    @blp.arguments(LinkRequestSchema)
    @blp.response(201, LinkRequestSchema, description="kept")
    @blp.alt_response(200, schema=LinkRequestSchema, description="already kept")
    def post(self, body: dict[str, Any]) -> Reply:
        """A new device's proof that it holds the link code's secret."""
        created = roster.post_link_request(services(), caller(), body["proof"])
        return body, 201 if created else 200


@blp.route("/roster/contacts")
class ContactSet(MethodView):
    @device_endpoint(blp)
    @blp.response(200, ContactSetResponseSchema)
    def get(self) -> dict[str, Any]:
        """The latest contact set the owner's devices signed (null if none yet)."""
        return {"statement": roster.contact_set(services(), caller())}

    @device_endpoint(blp)
    @refusals(blp, 400, 409)
    @blp.arguments(ContactSetRequestSchema)
    @blp.response(201, ContactSetResponseSchema, description="stored")
    @blp.alt_response(200, schema=ContactSetResponseSchema, description="already stored")
    def put(self, body: dict[str, Any]) -> Reply:
        """Replace the contact set with a newer one signed by a roster device."""
        created = roster_contacts.put_contact_set(services(), caller(), body["statement"])
        return {"statement": body["statement"]}, 201 if created else 200
