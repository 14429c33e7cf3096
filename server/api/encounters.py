"""Encounters: created by id from the phone; what the server holds of each."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.encounters import (
    EncounterDetailSchema,
    EncounterListSchema,
    EncounterPutSchema,
    EncounterSchema,
)
from server.api.common import caller, device_endpoint, reader_endpoint, refusals
from server.context import services
from server.evidence.deletion import open_deletion_view
from server.evidence.encounters import log_origin, put_encounter
from server.identity.auth import CONTACT
from server.store.encounters import Encounter
from server.store.metadata import Tx
from server.trust.access import readable_encounter

blp = Blueprint("encounters", __name__, url_prefix="/v1", description="Encounters")


def encounter_body(encounter: Encounter) -> dict[str, Any]:
    return {
        "encounter_id": encounter.encounter_id,
        "started_at": encounter.started_at,
        "created_at": encounter.created_at,
        "log_origin": log_origin(services().server_name, encounter.encounter_id),
    }


def with_deletion(tx: Tx, body: dict[str, Any]) -> dict[str, Any]:
    view = open_deletion_view(tx, body["encounter_id"])
    return {**body, "deletion": vars(view) if view is not None else None}


@blp.route("/encounters")
class Encounters(MethodView):
    @device_endpoint(blp)
    @blp.response(200, EncounterListSchema)
    def get(self) -> dict[str, Any]:
        """The caller's account's encounters, oldest first."""
        with services().store.read() as tx:
            found = [with_deletion(tx, encounter_body(e))
                     for e in tx.encounters_of(caller().account_id)]
        return {"encounters": found}


@blp.route("/encounters/<uuid_lower:encounter_id>")
class EncounterById(MethodView):
    @device_endpoint(blp)
    @refusals(blp, 409)
    @blp.arguments(EncounterPutSchema)
    @blp.response(201, EncounterSchema, description="created")
    @blp.alt_response(200, schema=EncounterSchema, description="already existed (unchanged)")
    def put(self, body: dict[str, Any], encounter_id: str) -> tuple[dict[str, Any], int]:
        """Create an encounter under the phone-made id (idempotent)."""
        encounter, created = put_encounter(services(), caller(), encounter_id, body["started_at"])
        return encounter_body(encounter), 201 if created else 200

    @reader_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, EncounterDetailSchema)
    def get(self, encounter_id: str) -> dict[str, Any]:
        """The encounter, its log size, and which seqs of each stream are held."""
        with services().store.read() as tx:
            encounter = readable_encounter(tx, caller(), encounter_id)
            streams = tx.streams(encounter_id)
            body = with_deletion(tx, encounter_body(encounter))
            who = caller()
            shared = who.kind == CONTACT and \
                tx.shared_encounter_of_contact(who.contact_id) is not None
        return {
            **body, "shared": shared,
            "log_size": encounter.log_size,
            "streams": {name: {"seqs": state.seqs, "final_seq": state.final_seq}
                        for name, state in streams.items()},
        }
