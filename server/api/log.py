"""An encounter's Merkle log: checkpoints, consistency and inclusion proofs, leaves."""

from __future__ import annotations

import base64
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.log import (
    CheckpointResponseSchema,
    ConsistencyQuerySchema,
    ConsistencyResponseSchema,
    InclusionQuerySchema,
    InclusionResponseSchema,
    LeavesQuerySchema,
    LeavesResponseSchema,
)
from server.api.common import caller, reader_endpoint, refusals
from server.context import services
from server.tlog import reads as logs
from server.tlog import witnesses
from server.trust.access import readable_encounter

blp = Blueprint("log", __name__, url_prefix="/v1/encounters/<uuid_lower:encounter_id>/log",
                description="Each encounter's Merkle log")


@blp.route("/checkpoint")
class LatestCheckpoint(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, CheckpointResponseSchema)
    def get(self, encounter_id: str) -> dict[str, Any]:
        """The latest signed checkpoint (covers every leaf so far), with the cosignature lines
        of the configured witnesses that have cosigned it (asked now, briefly, if not yet)."""
        svc = services()
        with svc.store.read() as tx:
            found = logs.latest_checkpoint(tx, readable_encounter(tx, caller(), encounter_id))
        if svc.config.get("WITNESSES"):
            witnesses.collect(svc, encounter_id, found)
            return {"tree_size": found.tree_size,
                    "checkpoint": witnesses.cosigned_note(svc, encounter_id, found)}
        return {"tree_size": found.tree_size, "checkpoint": found.note}


@blp.route("/checkpoints/<int(max=9223372036854775807):size>")
class CheckpointAtSize(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 404)
    @blp.response(200, CheckpointResponseSchema)
    def get(self, encounter_id: str, size: int) -> dict[str, Any]:
        """The checkpoint signed when the log reached `size` leaves."""
        svc = services()
        with svc.store.read() as tx:
            found = logs.checkpoint_at(tx, readable_encounter(tx, caller(), encounter_id), size)
        return {"tree_size": found.tree_size,
                "checkpoint": witnesses.cosigned_note(svc, encounter_id, found)}


@blp.route("/consistency")
class Consistency(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 400, 404)
    @blp.arguments(ConsistencyQuerySchema, location="query")
    @blp.response(200, ConsistencyResponseSchema)
    def get(self, query: dict[str, Any], encounter_id: str) -> dict[str, Any]:
        """Proof that the tree of size `first` is a prefix of the tree of size `second`."""
        first, second = query["first"], query["second"]
        with services().store.read() as tx:
            encounter = readable_encounter(tx, caller(), encounter_id)
            proof = logs.consistency(tx, encounter, first, second)
        return {"first": first, "second": second, "proof": proof}


@blp.route("/inclusion")
class Inclusion(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 400, 404)
    @blp.arguments(InclusionQuerySchema, location="query")
    @blp.response(200, InclusionResponseSchema)
    def get(self, query: dict[str, Any], encounter_id: str) -> dict[str, Any]:
        """Proof that leaf `index` is in the tree of size `tree_size`."""
        index, tree_size = query["index"], query["tree_size"]
        with services().store.read() as tx:
            encounter = readable_encounter(tx, caller(), encounter_id)
            proof = logs.inclusion(tx, encounter, index, tree_size)
        return {"leaf_index": index, "tree_size": tree_size, "proof": proof}


@blp.route("/leaves")
class Leaves(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 400, 404)
    @blp.arguments(LeavesQuerySchema, location="query")
    @blp.response(200, LeavesResponseSchema)
    def get(self, query: dict[str, Any], encounter_id: str) -> dict[str, Any]:
        """Leaves [start, end) (at most 1000 per page): the signed descriptor notes, in order."""
        with services().store.read() as tx:
            encounter = readable_encounter(tx, caller(), encounter_id)
            found = logs.leaves(tx, encounter, query["start"], query.get("end"))
        return {"leaves": [{"index": i, "data": base64.b64encode(d).decode("ascii")}
                           for i, d in found]}
