"""The HTTP API's blueprints (flask-smorest); each module is one group of endpoints."""

from __future__ import annotations

from flask_smorest import Api

from server.api import (
    accounts,
    batch,
    changes,
    chunks,
    contacts,
    deletion,
    direct,
    encounters,
    log,
    meta,
    pake,
    roster,
    shares,
)
from server.api.common import (
    BEARER_SCHEME,
    StreamConverter,
    UuidConverter,
    stream_param_schema,
    uuid_param_schema,
)
from server.ops import health


def register_api(api: Api) -> None:
    api.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)
    api.register_converter(UuidConverter, uuid_param_schema)
    api.register_converter(StreamConverter, stream_param_schema)
    for module in (meta, accounts, encounters, chunks, direct, log, changes, contacts,
                   deletion, batch, roster, shares, pake):
        api.register_blueprint(module.blp)
    api.register_blueprint(health.blp)
