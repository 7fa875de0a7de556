"""What every route module shares: the core behind a request, authentication, strict query and body parsing, answers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response

from mocks.one.core import MockCore, Principal
from mocks.one.errors import ApiError
from mocks.one.middleware import MAX_BODY_BYTES, declares_more_than

JSON_TYPE = re.compile(r"^application/(json|[A-Za-z0-9.+-]+\+json)\s*(;.*)?$", re.IGNORECASE)


def core_of(request: Request) -> MockCore:
    """Return the mock's state behind the app serving `request`."""
    core: MockCore = request.app.state.core
    return core


def authenticate(request: Request, scope: str) -> Principal:
    """Return the principal behind the request's bearer token, or raise the 401/403 the contract prescribes."""
    return core_of(request).authenticate(request.headers.get("authorization"), scope)


def query_params(request: Request, allowed: Sequence[str], *, drop_blank: bool = False) -> dict[str, str]:
    """Return the query parameters, refusing unknown or repeated ones (names only in the error, never values)."""
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    if drop_blank:
        pairs = [(name, value) for name, value in pairs if value != ""]
    names = [name for name, _ in pairs]
    unknown = sorted({name for name in names if name not in allowed})
    repeated = sorted({name for name in names if names.count(name) > 1})
    if unknown or repeated:
        raise ApiError(400, "INVALID_QUERY", details={"parameters": (unknown + repeated)[:20]})
    return dict(pairs)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def _reject_constant(_: str) -> Any:
    raise ValueError("non-standard JSON constant")


async def bounded_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The request body, or None when it is longer than `limit` bytes.

    Reading stops as soon as the body is known to be too long (a Content-Length over the limit is
    not read at all), so a huge body is never held in memory. The middleware has read at most a
    little more than MAX_BODY_BYTES of it before (for the journal), and stopped there too.
    """
    if declares_more_than(request.headers.get("content-length"), limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def json_object(request: Request) -> dict[str, Any]:
    """Parse the body as a JSON object: 415 for another content type, 400 MALFORMED_JSON for anything unparseable."""
    if not JSON_TYPE.match(request.headers.get("content-type", "")):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE")
    body = await bounded_body(request)
    if body is None:
        raise ApiError(400, "MALFORMED_JSON", message="The request body is too large.")
    try:
        parsed = json.loads(body, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "MALFORMED_JSON") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "MALFORMED_JSON", message="The request body must be a JSON object.")
    return parsed


def field_path(location: Sequence[int | str]) -> str:
    """Name a field by its location in a validation error: `people.0.personId`, or `(body)` for the whole body."""
    return ".".join(str(part) for part in location) or "(body)"


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Answer with compact JSON."""
    return Response(
        json.dumps(content, separators=(",", ":")), status, headers=dict(headers or {}), media_type="application/json"
    )


def resource_response(resource: Mapping[str, Any], status: int, extra: Mapping[str, str] | None = None) -> Response:
    """Answer with an involvement and its ETag."""
    headers = {"ETag": f'W/"{resource["version"]}"', **(extra or {})}
    return json_response(resource, status, headers)
