"""Bodies of GET /healthz and GET /readyz."""

from __future__ import annotations

from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"description": "`ok`: the process answers"})


class ReadySchema(Schema):
    status = fields.String(required=True, metadata={"description": "`ready`"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                         metadata={"description": "`database`, `blob_store`: `ok`"})
