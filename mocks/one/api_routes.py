"""The One API the mock serves: the OAuth2 token endpoint and the involvement routes (docs/one-api.md)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mocks.one import schemas
from mocks.one.core import ALL_SCOPES, IDEMPOTENCY_KEY_RE, PERSON_ID_RE, ClientCredential
from mocks.one.errors import ApiError
from mocks.one.openapi import INVOLVEMENT_ID, error_responses, json_body, param
from mocks.one.route_helpers import (
    authenticate,
    bounded_body,
    core_of,
    json_object,
    json_response,
    query_params,
    resource_response,
)

READ, WRITE = "involvements.read", "involvements.write"
#: A token request is a few short form fields; anything longer is refused unread.
MAX_FORM_BYTES = 64 * 1024

_UPSTREAM = (429, 500, 502, 503, 504)
_ETAG_HEADER = {"ETag": {"description": 'W/"<version>"', "schema": {"type": "string"}}}
_PERSON_ID = param("personId", "path", {"type": "string", "pattern": schemas.PERSON_ID_PATTERN}, required=True)
_STATUS = param("status", "query", {"type": "string", "enum": ["active", "removed"]}, description="Omitted: every status.")
_CORRELATION = param("X-Correlation-ID", "header", {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"})

router = APIRouter(tags=["One API"])


def _page_size(value: str | None) -> int:
    if value is None:
        return 50
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 100:
        raise ApiError(400, "INVALID_QUERY", details={"parameters": ["pageSize"]})
    return int(value)


def _status(value: str | None) -> str | None:
    if value is not None and value not in ("active", "removed"):
        raise ApiError(400, "INVALID_QUERY", details={"parameters": ["status"]})
    return value


@router.post(
    "/connect/token",
    summary="OAuth2 client credentials",
    response_model=None,
    responses={
        200: {"model": schemas.TokenResponse, "description": "A bearer token"},
        400: {"model": schemas.OAuthError, "description": "invalid_request, unsupported_grant_type or invalid_scope"},
        401: {"model": schemas.OAuthError, "description": "invalid_client"},
        **error_responses(*_UPSTREAM),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string", "format": "password"},
                            "scope": {"type": "string", "example": "involvements.read involvements.write"},
                        },
                    }
                }
            },
        }
    },
)
async def token(request: Request) -> Response:
    return await _issue_token(request)


@router.post(
    "/api/v1/people/{personId}/involvements",
    summary="Create the flag for a person",
    status_code=201,
    response_model=None,
    responses={
        201: {
            "model": schemas.Involvement,
            "description": "Created (or the original answer replayed for a repeated Idempotency-Key)",
            "headers": {**_ETAG_HEADER, "Location": {"schema": {"type": "string"}}},
        },
        **error_responses(400, 401, 403, 404, 409, 410, 415, 422, *_UPSTREAM),
    },
    openapi_extra={
        "parameters": [
            _PERSON_ID,
            param("Idempotency-Key", "header", {"type": "string", "pattern": r"^[\x21-\x7e]{1,64}$"}, required=True),
            _CORRELATION,
        ],
        "requestBody": json_body("InvolvementCreate"),
        "security": [{"bearerAuth": []}],
    },
)
async def create(request: Request) -> Response:
    principal = authenticate(request, WRITE)
    query_params(request, ())
    person_id = request.path_params["personId"]
    if not PERSON_ID_RE.fullmatch(person_id):
        raise ApiError(404, "PERSON_NOT_FOUND")
    key = request.headers.get("idempotency-key")
    if key is None or not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ApiError(400, "IDEMPOTENCY_KEY_REQUIRED")
    body = await json_object(request)
    unknown = sorted(set(body) - {"involvementType"})
    if unknown:
        raise ApiError(422, "UNKNOWN_FIELD", details={"fields": unknown[:50]})
    involvement_type = body.get("involvementType")
    if not isinstance(involvement_type, str):
        raise ApiError(422, "INVALID_INVOLVEMENT_TYPE")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    fingerprint = hashlib.sha256(f"{person_id}\n{canonical}".encode()).hexdigest()
    outcome = core_of(request).create(principal, person_id, involvement_type, key, fingerprint)
    extra = {"Location": f"/api/v1/involvements/{outcome.resource['id']}"}
    if outcome.replayed:
        extra["Idempotency-Replayed"] = "true"
    return resource_response(outcome.resource, 201, extra)


@router.get(
    "/api/v1/involvements",
    summary="List the caller's team's involvements",
    response_model=None,
    responses={
        200: {"model": schemas.InvolvementPage, "description": "One page, ordered by id"},
        **error_responses(400, 401, 403, *_UPSTREAM),
    },
    openapi_extra={
        "parameters": [
            _STATUS,
            param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
            param("pageToken", "query", {"type": "string", "minLength": 1, "maxLength": 512}),
            _CORRELATION,
        ],
        "security": [{"bearerAuth": []}],
    },
)
async def list_ours(request: Request) -> Response:
    principal = authenticate(request, READ)
    query = query_params(request, ("status", "pageSize", "pageToken"))
    items, next_token = core_of(request).list_ours(
        principal, _status(query.get("status")), _page_size(query.get("pageSize")), query.get("pageToken") or None
    )
    return json_response({"items": items, "nextPageToken": next_token})


@router.get(
    "/api/v1/people/{personId}/involvements",
    summary="List the caller's team's involvements for one person",
    response_model=None,
    responses={
        200: {"model": schemas.InvolvementList, "description": "Ordered by id"},
        **error_responses(400, 401, 403, 404, 409, 410, *_UPSTREAM),
    },
    openapi_extra={"parameters": [_PERSON_ID, _STATUS, _CORRELATION], "security": [{"bearerAuth": []}]},
)
async def list_person(request: Request) -> Response:
    principal = authenticate(request, READ)
    query = query_params(request, ("status",))
    person_id = request.path_params["personId"]
    if not PERSON_ID_RE.fullmatch(person_id):
        raise ApiError(404, "PERSON_NOT_FOUND")
    items = core_of(request).list_person(principal, person_id, _status(query.get("status")))
    return json_response({"items": items})


@router.get(
    "/api/v1/involvements/{involvementId}",
    summary="Read one involvement",
    response_model=None,
    responses={
        200: {"model": schemas.Involvement, "description": "The involvement (any status)", "headers": _ETAG_HEADER},
        **error_responses(400, 401, 403, 404, *_UPSTREAM),
    },
    openapi_extra={"parameters": [INVOLVEMENT_ID, _CORRELATION], "security": [{"bearerAuth": []}]},
)
async def get_one(request: Request) -> Response:
    principal = authenticate(request, READ)
    query_params(request, ())
    return resource_response(core_of(request).get(principal, request.path_params["involvementId"]), 200)


@router.delete(
    "/api/v1/involvements/{involvementId}",
    summary="Remove the flag",
    status_code=204,
    response_model=None,
    responses={
        204: {"description": "Removed"},
        **error_responses(400, 401, 403, 404, 412, 422, 428, *_UPSTREAM),
    },
    openapi_extra={
        "parameters": [
            INVOLVEMENT_ID,
            param("If-Match", "header", {"type": "string", "example": 'W/"1"'}, required=True),
            _CORRELATION,
        ],
        "security": [{"bearerAuth": []}],
    },
)
async def delete(request: Request) -> Response:
    principal = authenticate(request, WRITE)
    query_params(request, ())
    body = await bounded_body(request)
    if body is None or body.strip():
        # No reason, date or note may be sent with a removal.
        try:
            parsed = None if body is None else json.loads(body)
        except ValueError:
            parsed = None
        fields = sorted(parsed)[:50] if isinstance(parsed, dict) and parsed else ["(body)"]
        raise ApiError(422, "UNKNOWN_FIELD", details={"fields": fields})
    core_of(request).delete(principal, request.path_params["involvementId"], request.headers.get("if-match"))
    return Response(status_code=204)


class _OAuthProblem(Exception):
    """A token request refused with an RFC 6749 error answer."""

    def __init__(self, status: int, error: str, description: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})


async def _issue_token(request: Request) -> Response:
    try:
        client, scopes = await _token_request(request)
    except _OAuthProblem as problem:
        refusal = {"error": problem.error, "error_description": problem.description}
        return json_response(refusal, problem.status, {"Cache-Control": "no-store", **problem.headers})
    token, ttl = core_of(request).issue_token(client, scopes)
    body: dict[str, object] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": " ".join(sorted(scopes)),
    }
    return json_response(body, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _token_request(request: Request) -> tuple[ClientCredential, frozenset[str]]:
    """Validate a client-credentials request; return the client and the granted scopes."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _OAuthProblem(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
    body = await bounded_body(request, MAX_FORM_BYTES)
    if body is None:
        raise _OAuthProblem(400, "invalid_request", "The body is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise _OAuthProblem(400, "invalid_request", "The body is not valid UTF-8.") from None
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):
        raise _OAuthProblem(400, "invalid_request", "A parameter is repeated.")
    form = dict(pairs)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    basic = _basic_credentials(request.headers.get("authorization"))
    if basic is not None:
        if client_id is not None and client_id != basic[0]:
            raise _OAuthProblem(400, "invalid_request", "Conflicting client credentials.")
        client_id, secret = basic
    grant_type = form.get("grant_type")
    if not grant_type or client_id is None:
        raise _OAuthProblem(400, "invalid_request", "grant_type and client credentials are required.")
    if grant_type != "client_credentials":
        raise _OAuthProblem(400, "unsupported_grant_type", "Only client_credentials is supported.")
    requested = frozenset(form.get("scope", "").split()) or ALL_SCOPES
    if not requested <= ALL_SCOPES:
        raise _OAuthProblem(400, "invalid_scope", "An unknown scope was requested.")
    client = core_of(request).client(client_id)
    if client is None or secret is None or not _same(secret, client.secret):
        challenge = {"WWW-Authenticate": 'Basic realm="one"'} if basic is not None else None
        raise _OAuthProblem(401, "invalid_client", "Client authentication failed.", challenge)
    return client, requested


def _same(given: str, expected: str) -> bool:
    return hashlib.sha256(given.encode()).digest() == hashlib.sha256(expected.encode()).digest()


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (unquote(user), unquote(password)) if sep else None
