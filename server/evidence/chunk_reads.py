"""Serving a stored chunk's bytes, whole or as one HTTP byte range."""

from __future__ import annotations

from flask import Response, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from server.blobs.store import BlobStore
from server.store.encounters import ChunkRecord

OCTETS = "application/octet-stream"


def chunk_response(blobs: BlobStore, record: ChunkRecord) -> Response:
    """200 with the whole chunk, 206 with one satisfiable range, 304 when the ETag matches."""
    etag = record.sha256
    if request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    ranges = request.range
    if ranges is not None and len(ranges.ranges) != 1:
        ranges = None  # several ranges: RFC 9110 lets us answer with the whole chunk
    byte_range = ranges.range_for_length(record.size) if ranges is not None else None
    if ranges is not None and byte_range is None:
        raise RequestedRangeNotSatisfiable(length=record.size)
    if byte_range is None:
        response = Response(blobs.get(record.blob_key), mimetype=OCTETS)
    else:
        start, stop = byte_range
        data = blobs.get_range(record.blob_key, start, stop - 1)
        response = Response(data, status=206, mimetype=OCTETS)
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{record.size}"
    response.headers["Accept-Ranges"] = "bytes"
    response.set_etag(etag)
    return response
