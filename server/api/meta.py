"""GET /v1/server: who this server is and what it accepts."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.batch import MAX_PACK_BYTES, MAX_PACK_CHUNKS, MAX_RECEIPTS_PER_PAGE
from schemas.log import MAX_LEAVES_PER_PAGE
from schemas.server_info import ServerInfoSchema
from server.context import services

blp = Blueprint("server", __name__, url_prefix="/v1", description="This server")


@blp.route("/server")
class ServerInfo(MethodView):
    @blp.response(200, ServerInfoSchema)
    def get(self) -> dict[str, Any]:
        """The server's name, signing key, fingerprint and limits."""
        svc = services()
        return {
            "name": svc.server_name,
            "server_key": svc.server_key,
            "fingerprint": svc.fingerprint,
            # phones may PUT chunk bodies to S3 and commit them (POST …/chunks/{seq}/direct)
            "direct_uploads": bool(svc.config.get("DIRECT_UPLOADS")),
            "limits": {
                "max_chunk_bytes": svc.config["MAX_CHUNK_BYTES"],
                "max_streams_per_encounter": svc.config["MAX_STREAMS"],
                "requests_per_minute": svc.config["RATE_PER_MINUTE"],
                "max_leaves_per_page": MAX_LEAVES_PER_PAGE,
                "max_receipts_per_page": MAX_RECEIPTS_PER_PAGE,
                "max_pack_chunks": MAX_PACK_CHUNKS,
                "max_pack_bytes": MAX_PACK_BYTES,
            },
        }
