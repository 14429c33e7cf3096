"""GET /v1/changes: what happened in the caller's account since a cursor."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.changes import ChangesQuerySchema, ChangesResponseSchema
from server.api.common import caller, reader_endpoint, refusals
from server.context import services
from server.errors import ApiError
from server.identity.auth import CONTACT
from server.trust.contact_reads import contact_changes

blp = Blueprint("changes", __name__, url_prefix="/v1", description="Changes feed")

CURSOR_PREFIX = "c1:"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if text.startswith(CURSOR_PREFIX) and text[len(CURSOR_PREFIX):].isdigit():
            return int(text[len(CURSOR_PREFIX):])
    except (binascii.Error, ValueError):
        pass
    raise ApiError(400, "bad_cursor", "The cursor is not one this server gave out; start again "
                   "without one.")


@blp.route("/changes")
class Changes(MethodView):
    @reader_endpoint(blp)
    @refusals(blp, 400)
    @blp.arguments(ChangesQuerySchema, location="query")
    @blp.response(200, ChangesResponseSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Changes after the cursor, oldest first; follow `cursor` until `done`.

        For a trusted contact: `released` (an encounter became readable), then chunk_stored,
        alert and safe of encounters released to it."""
        after = decode_cursor(query.get("cursor"))
        limit = query["limit"]
        if caller().kind == CONTACT:
            found, last, done = contact_changes(services(), caller(), after, limit)
            return {"changes": [vars(c) for c in found], "cursor": encode_cursor(last),
                    "done": done}
        with services().store.read() as tx:
            rows = tx.changes_after(caller().account_id, after, limit + 1)
        page = rows[:limit]
        last = page[-1].id if page else after
        return {"changes": [vars(c) for c in page], "cursor": encode_cursor(last),
                "done": len(rows) <= limit}
