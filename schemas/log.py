"""Query strings and bodies of an encounter's Merkle log endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from schemas.common import Base64List

MAX_LEAVES_PER_PAGE = 1000


def _count(description: str, **kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=0, max=2**62),
                          metadata={"description": description}, **kwargs)


class CheckpointResponseSchema(Schema):
    tree_size = fields.Integer(required=True)
    checkpoint = fields.String(required=True, metadata={"description": "signed checkpoint note"})


class ConsistencyQuerySchema(Schema):
    first = _count("the older tree size", required=True)
    second = _count("the newer tree size", required=True)


class ConsistencyResponseSchema(Schema):
    first = fields.Integer(required=True)
    second = fields.Integer(required=True)
    proof = Base64List("RFC 9162 consistency proof", required=True)


class InclusionQuerySchema(Schema):
    index = _count("leaf index", required=True)
    tree_size = _count("tree size the proof is for", required=True)


class InclusionResponseSchema(Schema):
    leaf_index = fields.Integer(required=True)
    tree_size = fields.Integer(required=True)
    proof = Base64List("RFC 9162 inclusion proof", required=True)


class LeavesQuerySchema(Schema):
    start = _count("first leaf index (inclusive)", load_default=0)
    end = _count("last leaf index (exclusive); default: the log size")


class LeafSchema(Schema):
    index = fields.Integer(required=True)
    data = fields.String(required=True, metadata={"description": "b64 of the leaf bytes"})


class LeavesResponseSchema(Schema):
    leaves = fields.List(fields.Nested(LeafSchema), required=True)
