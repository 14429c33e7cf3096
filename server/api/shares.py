"""One-encounter shares: the re-wrapped headers and grants the owner's device posts, and that
the share's recipient fetches (docs/protocol.md, "Sharing one encounter")."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.shares import GrantListSchema, GrantPostResponseSchema, GrantPostSchema
from server.api.common import caller, device_endpoint, reader_endpoint, refusals
from server.context import services
from server.trust.access import readable_encounter
from server.trust.shares import grants_view, store_grants

blp = Blueprint("shares", __name__, url_prefix="/v1", description="One-encounter shares")


@blp.route("/encounters/<uuid_lower:encounter_id>/grants")
class Grants(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, GrantListSchema)
    def get(self, encounter_id: str) -> dict[str, Any]:
        """Re-wrapped headers: a share recipient's own; for the owner's devices, all of them."""
        with services().store.read() as tx:
            readable_encounter(tx, caller(), encounter_id)  # a recipient's read is logged
            return {"grants": grants_view(tx, caller(), encounter_id)}

    @device_endpoint(blp)
    @refusals(blp, 400, 404, 409)
    @blp.arguments(GrantPostSchema)
    @blp.response(200, GrantPostResponseSchema)
    def post(self, body: dict[str, Any], encounter_id: str) -> dict[str, Any]:
        """Store re-wrapped headers for a share's recipient; every grant is checked first, and
        one bad grant refuses the whole request (nothing stored)."""
        return {"stored": store_grants(services(), caller(), encounter_id, body)}
