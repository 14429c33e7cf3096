"""The witness's HTTP service: POST /add-checkpoint (c2sp.org/tlog-witness) and GET /.

The add-checkpoint wire format is the spec's text (an old-size line, proof lines, a note) and
its answers are text too (note signature lines, or a size for 409), so this view reads and
writes bytes rather than marshmallow-validated JSON; only GET / (who this witness is) is JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from flask import Flask, Response, jsonify, request
from flask.views import MethodView

from crypto.cosignature import cosigner_of_signing_key
from crypto.signing import key_name
from witness.checkpoints import MAX_BODY_BYTES, Witness, add_checkpoint
from witness.state import WitnessState


class AddCheckpoint(MethodView):
    def __init__(self, witness: Witness) -> None:
        self.witness = witness

    def post(self) -> Response:
        body = request.stream.read(MAX_BODY_BYTES + 1)
        answer = add_checkpoint(self.witness, body)
        return Response(answer.body, status=answer.status, content_type=answer.content_type)


class About(MethodView):
    def __init__(self, witness: Witness) -> None:
        self.witness = witness

    def get(self) -> Response:
        return jsonify({
            "name": key_name(self.witness.signing_key),
            "vkey": cosigner_of_signing_key(self.witness.signing_key).vkey,
            "logs": [key_name(k) for k in self.witness.log_keys],
        })


def create_witness_app(signing_key: str, log_keys: Sequence[str], state_dir: Path,
                       clock: Callable[[], float] = time.time) -> Flask:
    witness = Witness(signing_key, tuple(log_keys), WitnessState(state_dir), clock)
    app = Flask("safehold.witness")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.add_url_rule("/add-checkpoint",
                     view_func=AddCheckpoint.as_view("add_checkpoint", witness=witness))
    app.add_url_rule("/", view_func=About.as_view("about", witness=witness))
    return app
