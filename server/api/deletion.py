"""Deleting an encounter: delayed, announced to contacts, stoppable by a contact's hold."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.deletion import DeletionSchema
from server.api.common import caller, contact_endpoint, device_endpoint, reader_endpoint, refusals
from server.context import services
from server.evidence import deletion

blp = Blueprint("deletion", __name__, url_prefix="/v1/encounters",
                description="Delayed, holdable deletion")


def deletion_body(view: deletion.DeletionView) -> dict[str, Any]:
    return vars(view)


@blp.route("/<uuid_lower:encounter_id>", methods=["DELETE"])
class DeleteEncounter(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 404, 409, 410)
    @blp.response(202, DeletionSchema, description="scheduled (or already scheduled so)")
    def delete(self, encounter_id: str) -> tuple[dict[str, Any], int]:
        """Ask to delete the encounter: it runs after the deletion delay unless a contact holds
        it; every trusted contact is told at once."""
        view = deletion.request_deletion(services(), caller(), encounter_id)
        return deletion_body(view), 202


@blp.route("/<uuid_lower:encounter_id>/deletion")
class Deletion(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, DeletionSchema)
    def get(self, encounter_id: str) -> dict[str, Any]:
        """The latest deletion request of the encounter (owner and the owner's contacts)."""
        return deletion_body(deletion.deletion_status(services(), caller(), encounter_id))

    @device_endpoint(blp)
    @refusals(blp, 404, 409, 410)
    @blp.response(200, DeletionSchema, description="cancelled")
    def delete(self, encounter_id: str) -> dict[str, Any]:
        """The owner withdraws a scheduled or held deletion."""
        return deletion_body(deletion.cancel_deletion(services(), caller(), encounter_id))


@blp.route("/<uuid_lower:encounter_id>/hold")
class Hold(MethodView):
    @contact_endpoint(blp)
    @refusals(blp, 404, 409, 410)
    @blp.response(200, DeletionSchema, description="held (idempotent)")
    def post(self, encounter_id: str) -> dict[str, Any]:
        """A trusted contact stops a scheduled deletion; it will not run."""
        return deletion_body(deletion.place_hold(services(), caller(), encounter_id))
