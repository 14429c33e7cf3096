"""Refuse JSON bodies nested deeper than any Safehold body before anything parses them.

Python's json module recurses once per level of nesting: a 10 KB body of `[[[[…` is enough
for a RecursionError, which would surface as a 500. Every body we accept nests only a few
levels, so anything deeper than MAX_JSON_DEPTH is refused with 400 `json_too_deep`.
"""

from __future__ import annotations

import re

from flask import request

from server.errors import ApiError

MAX_JSON_DEPTH = 32
# JSON strings (with escapes): their brackets do not nest anything.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in `body` (well-formed or not)."""
    depth = deepest = 0
    for token in re.finditer(rb"[\[\]{}]", _STRING.sub(b'""', body)):
        if token.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def refuse_deep_json(skip_endpoint: str) -> None:
    """A before_request hook for JSON requests (bodies are already capped in size); the chunk
    upload (`skip_endpoint`) streams its body and never parses it as JSON."""
    if not request.is_json or request.endpoint == skip_endpoint:
        return
    body = request.get_data(cache=True)
    # Counting bytes is cheap; the exact scan runs only for bodies that could be too deep.
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    if json_depth(body) > MAX_JSON_DEPTH:
        raise ApiError(400, "json_too_deep", f"The JSON body nests arrays and objects more than "
                       f"{MAX_JSON_DEPTH} levels deep; no Safehold request needs that.")
