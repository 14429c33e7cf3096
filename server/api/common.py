"""What every blueprint shares: authentication decorators, path converters, error docs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from flask import g
from flask_smorest import Blueprint
from werkzeug.routing import BaseConverter, IntegerConverter

from schemas.common import STREAM_PATTERN, UUID_PATTERN
from server.context import services
from server.errors import ApiError, NonCanonicalNumber
from server.identity.auth import CONTACT, Caller, authenticate, enforce_anonymous_rate_limit

F = TypeVar("F", bound=Callable[..., Any])
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
BEARER_SCHEME = {"type": "http", "scheme": "bearer",
                 "description": "token from POST /v1/auth/token"}


class UuidConverter(BaseConverter):
    """Lowercase UUIDs only: anything else is a 404 before any handler runs."""

    regex = UUID_PATTERN.strip("^$")


class StreamConverter(BaseConverter):
    regex = STREAM_PATTERN.strip("^$")


class CanonicalIntConverter(IntegerConverter):
    """werkzeug's `int` converter, refusing what protocol.md forbids: a number has one
    spelling in a URL, so `/chunks/007` is refused (400 `non_canonical_number`) rather than
    taken as seq 7. Raising an HTTPException (not ValidationError) makes Flask answer it
    instead of looking for another route."""

    def to_python(self, value: str) -> Any:
        if not value.isascii() or (len(value) > 1 and value.startswith("0")):
            raise NonCanonicalNumber(value)
        return super().to_python(value)


def uuid_param_schema(converter: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "pattern": UUID_PATTERN}


def stream_param_schema(converter: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "pattern": STREAM_PATTERN}


def _authenticated(blp: Blueprint, who: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        documented = blp.doc(security=BEARER)(_document_refusals(blp, func, 401, 403, 429))

        @functools.wraps(documented)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.caller = authenticate(services(), allow_contacts=who != "device")
            if who == "contact" and g.caller.kind != CONTACT:
                raise ApiError(403, "contacts_only", "Only a trusted contact may do this.")
            return documented(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def device_endpoint(blp: Blueprint) -> Callable[[F], F]:
    """Require a device's bearer token (401) within its rate limit (429) before anything else;
    a trusted contact's token is refused (403)."""
    return _authenticated(blp, "device")


def reader_endpoint(blp: Blueprint) -> Callable[[F], F]:
    """A device's or a trusted contact's token; what a contact may read is then decided by
    server/trust/access.py (release policies), per encounter."""
    return _authenticated(blp, "reader")


def contact_endpoint(blp: Blueprint) -> Callable[[F], F]:
    """Only a trusted contact's token (a device's is refused with 403)."""
    return _authenticated(blp, "contact")


def public_endpoint(blp: Blueprint) -> Callable[[F], F]:
    """No token; rate-limited per client address (429)."""

    def decorate(func: F) -> F:
        documented = _document_refusals(blp, func, 429)

        @functools.wraps(documented)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            enforce_anonymous_rate_limit(services())
            return documented(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def refusals(blp: Blueprint, *statuses: int) -> Callable[[F], F]:
    """Document error statuses (all with the error envelope) on an operation."""

    def decorate(func: F) -> F:
        return _document_refusals(blp, func, *statuses)

    return decorate


def _document_refusals(blp: Blueprint, func: F, *statuses: int) -> F:
    documented: Any = func
    for status in statuses:
        documented = blp.alt_response(status, response=HTTPStatus(status).name)(documented)
    # alt_response records its doc in `_apidoc` and wraps the view in a layer that only calls
    # it on (resolving the app and checking for a coroutine each time); keep the doc, not the
    # layers: nine of them cost every request more than its database reads.
    func._apidoc = documented._apidoc  # type: ignore[attr-defined]
    return func


def caller() -> Caller:
    found: Caller = g.caller
    return found
