"""The FastAPI application: the One API, the /_mock control plane, the tester page and offline docs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mocks.one import schemas
from mocks.one.core import ALL_SCOPES, IDEMPOTENCY_KEY_RE, PERSON_ID_RE, ClientCredential, JournalQuery, MockCore, Principal
from mocks.one.errors import DEFAULT_CODES, ApiError, envelope_bytes
from mocks.one.middleware import ASGIApp, MockMiddleware, correlation_id_of
from mocks.one.tester_page import DEFAULT_ROWS, MAX_ROWS, PAGE_PARAMETERS, render_tester_page

_log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

JSON_TYPE = re.compile(r"^application/(json|[A-Za-z0-9.+-]+\+json)\s*(;.*)?$", re.IGNORECASE)
MAX_BODY_BYTES = 16 * 1024 * 1024
READ, WRITE = "involvements.read", "involvements.write"


# --------------------------------------------------------------------------- request helpers


def _core(request: Request) -> MockCore:
    core: MockCore = request.app.state.core
    return core


def _auth(request: Request, scope: str) -> Principal:
    return _core(request).authenticate(request.headers.get("authorization"), scope)


def _query(request: Request, allowed: Sequence[str], *, drop_blank: bool = False) -> dict[str, str]:
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


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def _reject_constant(_: str) -> Any:
    raise ValueError("non-standard JSON constant")


async def _json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """Parse the body as a JSON object: 415 for another content type, 400 MALFORMED_JSON for anything unparseable."""
    body = await request.body()
    if optional and not body:
        return {}
    if not JSON_TYPE.match(request.headers.get("content-type", "")):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE")
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(400, "MALFORMED_JSON", message="The request body is too large.")
    try:
        parsed = json.loads(body, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "MALFORMED_JSON") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "MALFORMED_JSON", message="The request body must be a JSON object.")
    return parsed


def _field_path(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location) or "(body)"


def _validated(model: type[ModelT], data: Mapping[str, Any]) -> ModelT:
    """Validate a control-plane body; errors name fields only, never their values."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = error.errors(include_input=False, include_context=False, include_url=False)
        unknown = [_field_path(problem["loc"]) for problem in problems if problem["type"] == "extra_forbidden"]
        if unknown:
            raise ApiError(422, "UNKNOWN_FIELD", details={"fields": sorted(set(unknown))[:50]}) from None
        fields = sorted({_field_path(problem["loc"]) for problem in problems})[:50]
        # Pydantic's messages name the rule broken (a bound, a pattern, the allowed values), never the value given.
        described = [
            {"field": _field_path(problem["loc"]), "message": problem["msg"].removeprefix("Value error, ")}
            for problem in problems[:50]
        ]
        raise ApiError(422, "VALIDATION_FAILED", details={"fields": fields, "problems": described}) from None


def _json(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(content, separators=(",", ":")), status, headers=dict(headers or {}), media_type="application/json"
    )


def _resource_response(resource: Mapping[str, Any], status: int, extra: Mapping[str, str] | None = None) -> Response:
    headers = {"ETag": f'W/"{resource["version"]}"', **(extra or {})}
    return _json(resource, status, headers)


# --------------------------------------------------------------------------- OpenAPI helpers


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed request (MALFORMED_JSON, INVALID_QUERY, INVALID_PAGE_TOKEN, IDEMPOTENCY_KEY_REQUIRED)",
        401: "Missing, unknown or expired token (TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED)",
        403: "SCOPE_INSUFFICIENT, SERVICE_TEAM_NOT_PERMITTED or RECORD_RESTRICTED",
        404: "PERSON_NOT_FOUND or INVOLVEMENT_NOT_FOUND",
        409: "DUPLICATE_ACTIVE_INVOLVEMENT or PERSON_MERGED",
        410: "PERSON_ARCHIVED",
        412: "PRECONDITION_FAILED: stale If-Match",
        415: "UNSUPPORTED_MEDIA_TYPE",
        422: "UNKNOWN_FIELD, INVALID_INVOLVEMENT_TYPE, IDEMPOTENCY_KEY_REUSED or VALIDATION_FAILED",
        428: "PRECONDITION_REQUIRED: no If-Match",
        429: "RATE_LIMITED (with Retry-After)",
        500: "INTERNAL_ERROR",
        502: "UPSTREAM_UNAVAILABLE",
        503: "MAINTENANCE",
        504: "GATEWAY_TIMEOUT: the write may have been committed",
    }
    return {status: {"model": schemas.ErrorEnvelope, "description": described[status]} for status in statuses}


_UPSTREAM = (429, 500, 502, 503, 504)
_ETAG_HEADER = {"ETag": {"description": 'W/"<version>"', "schema": {"type": "string"}}}


def _param(name: str, where: str, schema: dict[str, Any], *, required: bool = False, description: str = "") -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": where, "required": required, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


_PERSON_ID = _param("personId", "path", {"type": "string", "pattern": schemas.PERSON_ID_PATTERN}, required=True)
_INVOLVEMENT_ID = _param("involvementId", "path", {"type": "string", "pattern": schemas.INVOLVEMENT_ID_PATTERN}, required=True)
_STATUS = _param("status", "query", {"type": "string", "enum": ["active", "removed"]}, description="Omitted: every status.")
_CORRELATION = _param("X-Correlation-ID", "header", {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"})


def _json_body(component: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}, "required": True}


def _install_openapi(app: FastAPI, body_models: Sequence[type[BaseModel]]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = document.setdefault("components", {})
        component_schemas = components.setdefault("schemas", {})
        for model in body_models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            component_schemas.update(schema.pop("$defs", {}))
            component_schemas[model.__name__] = schema
        components["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A token from POST /connect/token."}
        }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema


# --------------------------------------------------------------------------- the application


def create_app(core: MockCore) -> ASGIApp:
    """Build the ASGI application serving `core`: FastAPI wrapped in the journal/fault middleware."""
    app = FastAPI(
        title="One-style interface (flagsync mock)",
        version="1.0.0",
        description="The wire contract flagsync speaks, served by the mock, plus the mock's /_mock control plane.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.core = core
    _install_error_handlers(app)
    _install_one_api(app)
    _install_control_plane(app)
    _install_pages(app)
    _install_openapi(
        app,
        [
            schemas.InvolvementCreate,
            schemas.PeopleSeed,
            schemas.DirectInvolvement,
            schemas.FaultConfig,
            schemas.FaultSettings,
            schemas.FaultRule,
        ],
    )
    return MockMiddleware(app, core)


def _install_error_handlers(app: FastAPI) -> None:
    def render(request: Request, error: ApiError) -> Response:
        body = envelope_bytes(error, correlation_id_of(request.scope))
        return Response(body, error.status, headers=error.headers, media_type="application/json")

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)  # registered for ApiError only
        return render(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # registered for HTTPException only
        code = DEFAULT_CODES.get(exc.status_code, "HTTP_ERROR")
        return render(request, ApiError(exc.status_code, code, headers=exc.headers))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # registered for RequestValidationError only
        fields = sorted({_field_path(error.get("loc", ())) for error in exc.errors()})[:50]
        return render(request, ApiError(422, "VALIDATION_FAILED", details={"fields": fields}))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        _log.error("mock handler failed: %s", type(exc).__name__)
        return render(request, ApiError(500, "INTERNAL_ERROR"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)


def _install_one_api(app: FastAPI) -> None:
    @app.post(
        "/connect/token",
        tags=["One API"],
        summary="OAuth2 client credentials",
        response_model=None,
        responses={
            200: {"model": schemas.TokenResponse, "description": "A bearer token"},
            400: {"model": schemas.OAuthError, "description": "invalid_request, unsupported_grant_type or invalid_scope"},
            401: {"model": schemas.OAuthError, "description": "invalid_client"},
            **_errors(*_UPSTREAM),
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

    @app.post(
        "/api/v1/people/{personId}/involvements",
        tags=["One API"],
        summary="Create the flag for a person",
        status_code=201,
        response_model=None,
        responses={
            201: {
                "model": schemas.Involvement,
                "description": "Created (or the original answer replayed for a repeated Idempotency-Key)",
                "headers": {**_ETAG_HEADER, "Location": {"schema": {"type": "string"}}},
            },
            **_errors(400, 401, 403, 404, 409, 410, 415, 422, *_UPSTREAM),
        },
        openapi_extra={
            "parameters": [
                _PERSON_ID,
                _param("Idempotency-Key", "header", {"type": "string", "pattern": r"^[\x21-\x7e]{1,64}$"}, required=True),
                _CORRELATION,
            ],
            "requestBody": _json_body("InvolvementCreate"),
            "security": [{"bearerAuth": []}],
        },
    )
    async def create(request: Request) -> Response:
        principal = _auth(request, WRITE)
        _query(request, ())
        person_id = request.path_params["personId"]
        if not PERSON_ID_RE.fullmatch(person_id):
            raise ApiError(404, "PERSON_NOT_FOUND")
        key = request.headers.get("idempotency-key")
        if key is None or not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise ApiError(400, "IDEMPOTENCY_KEY_REQUIRED")
        body = await _json_object(request)
        unknown = sorted(set(body) - {"involvementType"})
        if unknown:
            raise ApiError(422, "UNKNOWN_FIELD", details={"fields": unknown[:50]})
        involvement_type = body.get("involvementType")
        if not isinstance(involvement_type, str):
            raise ApiError(422, "INVALID_INVOLVEMENT_TYPE")
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(f"{person_id}\n{canonical}".encode()).hexdigest()
        outcome = _core(request).create(principal, person_id, involvement_type, key, fingerprint)
        extra = {"Location": f"/api/v1/involvements/{outcome.resource['id']}"}
        if outcome.replayed:
            extra["Idempotency-Replayed"] = "true"
        return _resource_response(outcome.resource, 201, extra)

    @app.get(
        "/api/v1/involvements",
        tags=["One API"],
        summary="List the caller's team's involvements",
        response_model=None,
        responses={
            200: {"model": schemas.InvolvementPage, "description": "One page, ordered by id"},
            **_errors(400, 401, 403, *_UPSTREAM),
        },
        openapi_extra={
            "parameters": [
                _STATUS,
                _param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
                _param("pageToken", "query", {"type": "string", "minLength": 1, "maxLength": 512}),
                _CORRELATION,
            ],
            "security": [{"bearerAuth": []}],
        },
    )
    async def list_ours(request: Request) -> Response:
        principal = _auth(request, READ)
        query = _query(request, ("status", "pageSize", "pageToken"))
        items, next_token = _core(request).list_ours(
            principal, _status(query.get("status")), _page_size(query.get("pageSize")), query.get("pageToken") or None
        )
        return _json({"items": items, "nextPageToken": next_token})

    @app.get(
        "/api/v1/people/{personId}/involvements",
        tags=["One API"],
        summary="List the caller's team's involvements for one person",
        response_model=None,
        responses={
            200: {"model": schemas.InvolvementList, "description": "Ordered by id"},
            **_errors(400, 401, 403, 404, 409, 410, *_UPSTREAM),
        },
        openapi_extra={"parameters": [_PERSON_ID, _STATUS, _CORRELATION], "security": [{"bearerAuth": []}]},
    )
    async def list_person(request: Request) -> Response:
        principal = _auth(request, READ)
        query = _query(request, ("status",))
        person_id = request.path_params["personId"]
        if not PERSON_ID_RE.fullmatch(person_id):
            raise ApiError(404, "PERSON_NOT_FOUND")
        items = _core(request).list_person(principal, person_id, _status(query.get("status")))
        return _json({"items": items})

    @app.get(
        "/api/v1/involvements/{involvementId}",
        tags=["One API"],
        summary="Read one involvement",
        response_model=None,
        responses={
            200: {"model": schemas.Involvement, "description": "The involvement (any status)", "headers": _ETAG_HEADER},
            **_errors(400, 401, 403, 404, *_UPSTREAM),
        },
        openapi_extra={"parameters": [_INVOLVEMENT_ID, _CORRELATION], "security": [{"bearerAuth": []}]},
    )
    async def get_one(request: Request) -> Response:
        principal = _auth(request, READ)
        _query(request, ())
        return _resource_response(_core(request).get(principal, request.path_params["involvementId"]), 200)

    @app.delete(
        "/api/v1/involvements/{involvementId}",
        tags=["One API"],
        summary="Remove the flag",
        status_code=204,
        response_model=None,
        responses={
            204: {"description": "Removed"},
            **_errors(400, 401, 403, 404, 412, 422, 428, *_UPSTREAM),
        },
        openapi_extra={
            "parameters": [
                _INVOLVEMENT_ID,
                _param("If-Match", "header", {"type": "string", "example": 'W/"1"'}, required=True),
                _CORRELATION,
            ],
            "security": [{"bearerAuth": []}],
        },
    )
    async def delete(request: Request) -> Response:
        principal = _auth(request, WRITE)
        _query(request, ())
        body = await request.body()
        if body.strip():
            # No reason, date or note may be sent with a removal.
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            fields = sorted(parsed)[:50] if isinstance(parsed, dict) and parsed else ["(body)"]
            raise ApiError(422, "UNKNOWN_FIELD", details={"fields": fields})
        _core(request).delete(principal, request.path_params["involvementId"], request.headers.get("if-match"))
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
        return _json(refusal, problem.status, {"Cache-Control": "no-store", **problem.headers})
    token, ttl = _core(request).issue_token(client, scopes)
    body: dict[str, object] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": " ".join(sorted(scopes)),
    }
    return _json(body, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _token_request(request: Request) -> tuple[ClientCredential, frozenset[str]]:
    """Validate a client-credentials request; return the client and the granted scopes."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _OAuthProblem(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
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
    client = _core(request).client(client_id)
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


def _install_control_plane(app: FastAPI) -> None:
    tags: list[str | Enum] = ["Mock control plane"]

    @app.post(
        "/_mock/reset",
        tags=tags,
        summary="Forget everything but issued tokens",
        status_code=204,
        response_model=None,
        responses={204: {"description": "Reset"}, **_errors(400)},
    )
    async def reset(request: Request) -> Response:
        _query(request, ())
        _core(request).reset()
        return Response(status_code=204)

    @app.post(
        "/_mock/people",
        tags=tags,
        summary="Seed people",
        response_model=None,
        responses={200: {"model": schemas.SeedResult, "description": "Seeded"}, **_errors(400, 415, 422)},
        openapi_extra={"requestBody": _json_body("PeopleSeed")},
    )
    async def seed_people(request: Request) -> Response:
        _query(request, ())
        seed = _validated(schemas.PeopleSeed, await _json_object(request))
        return _json({"count": _core(request).seed_people(seed.people)})

    @app.get(
        "/_mock/people",
        tags=tags,
        summary="Seeded people",
        response_model=None,
        responses={200: {"model": schemas.PeopleView, "description": "Seeded people"}, **_errors(400)},
    )
    async def people(request: Request) -> Response:
        _query(request, ())
        core = _core(request)
        return _json({"anyPerson": core.any_person, "people": [person.model_dump() for person in core.people()]})

    @app.get(
        "/_mock/involvements",
        tags=tags,
        summary="Every involvement, all teams and statuses",
        response_model=None,
        responses={200: {"model": schemas.InvolvementList, "description": "Ordered by id"}, **_errors(400)},
    )
    async def all_involvements(request: Request) -> Response:
        _query(request, ())
        return _json({"items": _core(request).all_involvements()})

    @app.post(
        "/_mock/involvements",
        tags=tags,
        summary="Add an involvement directly, as if made by hand in One",
        status_code=201,
        response_model=None,
        responses={201: {"model": schemas.Involvement, "description": "Stored"}, **_errors(400, 415, 422)},
        openapi_extra={"requestBody": _json_body("DirectInvolvement")},
    )
    async def add_involvement(request: Request) -> Response:
        _query(request, ())
        given = _validated(schemas.DirectInvolvement, await _json_object(request))
        resource = _core(request).add_direct(given.personId, given.serviceTeam, given.involvementType, given.status)
        return _resource_response(resource, 201, {"Location": f"/api/v1/involvements/{resource['id']}"})

    @app.delete(
        "/_mock/involvements/{involvementId}",
        tags=tags,
        summary="Remove an involvement directly (drift)",
        status_code=204,
        response_model=None,
        responses={204: {"description": "Removed"}, **_errors(400, 404)},
        openapi_extra={"parameters": [_INVOLVEMENT_ID]},
    )
    async def remove_involvement(request: Request) -> Response:
        _query(request, ())
        _core(request).remove_direct(request.path_params["involvementId"])
        return Response(status_code=204)

    @app.get(
        "/_mock/requests",
        tags=tags,
        summary="The request journal, oldest first",
        response_model=None,
        responses={200: {"model": schemas.Journal, "description": "Journal records"}, **_errors(400)},
        openapi_extra={"parameters": _JOURNAL_PARAMETERS},
    )
    async def journal(request: Request) -> Response:
        query = journal_query(_query(request, JOURNAL_QUERY_NAMES), default_limit=None)
        page = _core(request).journal_page(query)
        return _json({"items": page.items, "matched": page.matched, "nextBefore": page.older_before})

    @app.post(
        "/_mock/faults",
        tags=tags,
        summary="Replace the fault configuration",
        response_model=None,
        responses={200: {"model": schemas.FaultState, "description": "Now active"}, **_errors(400, 415, 422)},
        openapi_extra={"requestBody": _json_body("FaultConfig")},
    )
    async def set_faults(request: Request) -> Response:
        _query(request, ())
        config = _validated(schemas.FaultConfig, await _json_object(request))
        core = _core(request)
        core.set_faults(config)
        return _json(core.fault_state())

    @app.get(
        "/_mock/faults",
        tags=tags,
        summary="The active fault configuration",
        response_model=None,
        responses={200: {"model": schemas.FaultState, "description": "Active faults"}, **_errors(400)},
    )
    async def get_faults(request: Request) -> Response:
        _query(request, ())
        return _json(_core(request).fault_state())

    @app.delete(
        "/_mock/faults",
        tags=tags,
        summary="Clear every fault",
        status_code=204,
        response_model=None,
        responses={204: {"description": "Cleared"}, **_errors(400)},
    )
    async def clear_faults(request: Request) -> Response:
        _query(request, ())
        _core(request).set_faults(schemas.FaultConfig())
        return Response(status_code=204)

    @app.patch(
        "/_mock/faults",
        tags=tags,
        summary="Change fault settings (seed, rate limit, token lifetime, listing delay), keeping the rules",
        response_model=None,
        responses={200: {"model": schemas.FaultState, "description": "Now active"}, **_errors(400, 415, 422)},
        openapi_extra={"requestBody": _json_body("FaultSettings")},
    )
    async def patch_faults(request: Request) -> Response:
        _query(request, ())
        settings = _validated(schemas.FaultSettings, await _json_object(request))
        core = _core(request)
        core.update_fault_settings(settings)
        return _json(core.fault_state())

    @app.post(
        "/_mock/faults/rules",
        tags=tags,
        summary="Add one fault rule after the others (their counters are kept)",
        status_code=201,
        response_model=None,
        responses={201: {"model": schemas.FaultState, "description": "Now active"}, **_errors(400, 415, 422)},
        openapi_extra={"requestBody": _json_body("FaultRule")},
    )
    async def add_fault_rule(request: Request) -> Response:
        _query(request, ())
        rule = _validated(schemas.FaultRule, await _json_object(request))
        core = _core(request)
        core.add_fault_rule(rule)
        return _json(core.fault_state(), 201)

    @app.delete(
        "/_mock/faults/rules/{ruleId}",
        tags=tags,
        summary="Remove one fault rule by id",
        status_code=204,
        response_model=None,
        responses={204: {"description": "Removed"}, **_errors(400, 404)},
        openapi_extra={"parameters": [_param("ruleId", "path", {"type": "integer", "minimum": 1}, required=True)]},
    )
    async def remove_fault_rule(request: Request) -> Response:
        _query(request, ())
        rule_id = request.path_params["ruleId"]
        if not rule_id.isascii() or not rule_id.isdigit() or len(rule_id) > 18:
            raise ApiError(404, "FAULT_RULE_NOT_FOUND")
        _core(request).remove_fault_rule(int(rule_id))
        return Response(status_code=204)


JOURNAL_QUERY_NAMES = ("method", "status", "path", "injected", "key", "since", "before", "limit")
_STATUS_FILTER = re.compile(r"[1-5][0-9][0-9]|[1-5]xx|dropped")
_METHOD_FILTER = re.compile(r"[A-Za-z]{1,16}")
_PATH_FILTER = re.compile(r"[\x21-\x7e]{1,512}")
_JOURNAL_PARAMETERS = [
    _param("method", "query", {"type": "string", "pattern": "^[A-Za-z]{1,16}$"}, description="Only this method."),
    _param(
        "status",
        "query",
        {"type": "string", "pattern": "^([1-5][0-9][0-9]|[1-5]xx|dropped)$"},
        description="An exact status (503), a class (5xx), or dropped (no answer).",
    ),
    _param(
        "path",
        "query",
        {"type": "string", "pattern": r"^[\x21-\x7e]{1,512}$"},
        description="An fnmatch-style glob on the path, as in fault rules: /api/v1/people/*/involvements.",
    ),
    _param("injected", "query", {"type": "string", "enum": ["true", "false"]}, description="Answered by a fault or not."),
    _param("key", "query", {"type": "string", "pattern": r"^[\x21-\x7e]{1,64}$"}, description="Only this Idempotency-Key."),
    _param("since", "query", {"type": "integer", "minimum": 0}, description="Only records with seq > since."),
    _param("before", "query", {"type": "integer", "minimum": 1}, description="Only records with seq < before (paging back)."),
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000}, description="Only the latest N that match."),
]


def journal_query(query: Mapping[str, str], *, default_limit: int | None, max_limit: int = 10_000) -> JournalQuery:
    """Validate the journal's filter parameters, naming every bad one (never its value) in one 400 INVALID_QUERY."""
    bad: list[str] = []

    def check(name: str, pattern: re.Pattern[str]) -> str | None:
        value = query.get(name)
        if value is not None and not pattern.fullmatch(value):
            bad.append(name)
            return None
        return value

    def number(name: str, low: int, high: int) -> int | None:
        try:
            return _bounded_int(query.get(name), name, low, high)
        except ApiError:
            bad.append(name)
            return None

    method = check("method", _METHOD_FILTER)
    status = check("status", _STATUS_FILTER)
    path = check("path", _PATH_FILTER)
    key = check("key", IDEMPOTENCY_KEY_RE)
    injected_text = query.get("injected")
    if injected_text is not None and injected_text not in ("true", "false"):
        bad.append("injected")
    since = number("since", 0, 2**62)
    before = number("before", 1, 2**62)
    limit = number("limit", 1, max_limit)
    if bad:
        raise ApiError(400, "INVALID_QUERY", details={"parameters": bad})
    return JournalQuery(
        since=since or 0,
        before=before,
        limit=default_limit if limit is None else limit,
        method=method.upper() if method else None,
        status=status,
        path=path,
        injected=None if injected_text is None else injected_text == "true",
        idempotency_key=key,
    )


def _bounded_int(value: str | None, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise ApiError(400, "INVALID_QUERY", details={"parameters": [name]})
    return int(value)


#: The console loads nothing but what the mock itself serves (it must work offline).
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_CONSOLE_ASSETS = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}


def _install_pages(app: FastAPI) -> None:
    static = resources.files("mocks.one").joinpath("static")
    docs_html = static.joinpath("docs.html").read_text(encoding="utf-8")
    assets = {name: static.joinpath(name).read_bytes() for name in _CONSOLE_ASSETS}

    @app.get("/_mock/", include_in_schema=False)
    @app.get("/_mock", include_in_schema=False)
    async def tester_page(request: Request) -> HTMLResponse:
        core = _core(request)
        raw = {name: value for name, value in parse_qsl(request.url.query) if name in PAGE_PARAMETERS}
        query: JournalQuery | None = None
        problem: ApiError | None = None
        try:
            given = _query(request, PAGE_PARAMETERS, drop_blank=True)
            query = journal_query(given, default_limit=DEFAULT_ROWS, max_limit=MAX_ROWS)
        except ApiError as error:
            problem = error
        html = render_tester_page(core, str(request.base_url).rstrip("/"), query, problem, raw)
        status = 200 if problem is None else 400
        headers = {"Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-store"}
        return HTMLResponse(html, status, headers=headers)

    @app.get("/_mock/static/{name}", include_in_schema=False)
    async def console_asset(name: str) -> Response:
        if name not in assets:
            raise ApiError(404, "NOT_FOUND")
        return Response(assets[name], media_type=_CONSOLE_ASSETS[name], headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_html)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return JSONResponse({"service": "One-style mock", "tester": "/_mock/", "docs": "/docs", "openapi": "/openapi.json"})
