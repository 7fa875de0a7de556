"""The /_mock control plane: seed people, change One by hand, set faults, read the request journal (mocks/README.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from mocks.one import schemas
from mocks.one.core import IDEMPOTENCY_KEY_RE
from mocks.one.errors import ApiError
from mocks.one.journal import JOURNAL_CAPACITY, JournalQuery
from mocks.one.openapi import INVOLVEMENT_ID, error_responses, json_body, param
from mocks.one.route_helpers import core_of, field_path, json_object, json_response, query_params, resource_response

ModelT = TypeVar("ModelT", bound=BaseModel)

router = APIRouter(tags=["Mock control plane"])


def _validated(model: type[ModelT], data: Mapping[str, Any]) -> ModelT:
    """Validate a control-plane body; errors name fields only, never their values."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = error.errors(include_input=False, include_context=False, include_url=False)
        unknown = [field_path(problem["loc"]) for problem in problems if problem["type"] == "extra_forbidden"]
        if unknown:
            raise ApiError(422, "UNKNOWN_FIELD", details={"fields": sorted(set(unknown))[:50]}) from None
        fields = sorted({field_path(problem["loc"]) for problem in problems})[:50]
        # Pydantic's messages name the rule broken (a bound, a pattern, the allowed values), never the value given.
        described = [
            {"field": field_path(problem["loc"]), "message": problem["msg"].removeprefix("Value error, ")}
            for problem in problems[:50]
        ]
        raise ApiError(422, "VALIDATION_FAILED", details={"fields": fields, "problems": described}) from None


JOURNAL_QUERY_NAMES = ("method", "status", "path", "injected", "key", "since", "before", "limit")
_STATUS_FILTER = re.compile(r"[1-5][0-9][0-9]|[1-5]xx|dropped")
_METHOD_FILTER = re.compile(r"[A-Za-z]{1,16}")
_PATH_FILTER = re.compile(r"[\x21-\x7e]{1,512}")
_JOURNAL_PARAMETERS = [
    param("method", "query", {"type": "string", "pattern": "^[A-Za-z]{1,16}$"}, description="Only this method."),
    param(
        "status",
        "query",
        {"type": "string", "pattern": "^([1-5][0-9][0-9]|[1-5]xx|dropped)$"},
        description="An exact status (503), a class (5xx), or dropped (no answer).",
    ),
    param(
        "path",
        "query",
        {"type": "string", "pattern": r"^[\x21-\x7e]{1,512}$"},
        description="An fnmatch-style glob on the path, as in fault rules: /api/v1/people/*/involvements.",
    ),
    param("injected", "query", {"type": "string", "enum": ["true", "false"]}, description="Answered by a fault or not."),
    param("key", "query", {"type": "string", "pattern": r"^[\x21-\x7e]{1,64}$"}, description="Only this Idempotency-Key."),
    param("since", "query", {"type": "integer", "minimum": 0}, description="Only records with seq > since."),
    param("before", "query", {"type": "integer", "minimum": 1}, description="Only records with seq < before (paging back)."),
    param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": JOURNAL_CAPACITY},
        description="Only the latest N that match.",
    ),
]


def journal_query(query: Mapping[str, str], *, default_limit: int | None, max_limit: int = JOURNAL_CAPACITY) -> JournalQuery:
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


@router.post(
    "/_mock/reset",
    summary="Forget everything but issued tokens",
    status_code=204,
    response_model=None,
    responses={204: {"description": "Reset"}, **error_responses(400)},
)
async def reset(request: Request) -> Response:
    query_params(request, ())
    core_of(request).reset()
    return Response(status_code=204)


@router.post(
    "/_mock/people",
    summary="Seed people",
    response_model=None,
    responses={200: {"model": schemas.SeedResult, "description": "Seeded"}, **error_responses(400, 415, 422)},
    openapi_extra={"requestBody": json_body("PeopleSeed")},
)
async def seed_people(request: Request) -> Response:
    query_params(request, ())
    seed = _validated(schemas.PeopleSeed, await json_object(request))
    return json_response({"count": core_of(request).seed_people(seed.people)})


@router.get(
    "/_mock/people",
    summary="Seeded people",
    response_model=None,
    responses={200: {"model": schemas.PeopleView, "description": "Seeded people"}, **error_responses(400)},
)
async def people(request: Request) -> Response:
    query_params(request, ())
    core = core_of(request)
    return json_response({"anyPerson": core.any_person, "people": [person.model_dump() for person in core.people()]})


@router.get(
    "/_mock/involvements",
    summary="Every involvement, all teams and statuses",
    response_model=None,
    responses={200: {"model": schemas.InvolvementList, "description": "Ordered by id"}, **error_responses(400)},
)
async def all_involvements(request: Request) -> Response:
    query_params(request, ())
    return json_response({"items": core_of(request).all_involvements()})


@router.post(
    "/_mock/involvements",
    summary="Add an involvement directly, as if made by hand in One",
    status_code=201,
    response_model=None,
    responses={201: {"model": schemas.Involvement, "description": "Stored"}, **error_responses(400, 415, 422)},
    openapi_extra={"requestBody": json_body("DirectInvolvement")},
)
async def add_involvement(request: Request) -> Response:
    query_params(request, ())
    given = _validated(schemas.DirectInvolvement, await json_object(request))
    resource = core_of(request).add_direct(given.personId, given.serviceTeam, given.involvementType, given.status)
    return resource_response(resource, 201, {"Location": f"/api/v1/involvements/{resource['id']}"})


@router.delete(
    "/_mock/involvements/{involvementId}",
    summary="Remove an involvement directly (drift)",
    status_code=204,
    response_model=None,
    responses={204: {"description": "Removed"}, **error_responses(400, 404)},
    openapi_extra={"parameters": [INVOLVEMENT_ID]},
)
async def remove_involvement(request: Request) -> Response:
    query_params(request, ())
    core_of(request).remove_direct(request.path_params["involvementId"])
    return Response(status_code=204)


@router.get(
    "/_mock/requests",
    summary="The request journal, oldest first",
    response_model=None,
    responses={200: {"model": schemas.Journal, "description": "Journal records"}, **error_responses(400)},
    openapi_extra={"parameters": _JOURNAL_PARAMETERS},
)
async def journal(request: Request) -> Response:
    query = journal_query(query_params(request, JOURNAL_QUERY_NAMES), default_limit=None)
    page = core_of(request).journal_page(query)
    return json_response({"items": page.items, "matched": page.matched, "nextBefore": page.older_before})


@router.post(
    "/_mock/faults",
    summary="Replace the fault configuration",
    response_model=None,
    responses={200: {"model": schemas.FaultState, "description": "Now active"}, **error_responses(400, 415, 422)},
    openapi_extra={"requestBody": json_body("FaultConfig")},
)
async def set_faults(request: Request) -> Response:
    query_params(request, ())
    config = _validated(schemas.FaultConfig, await json_object(request))
    core = core_of(request)
    core.set_faults(config)
    return json_response(core.fault_state())


@router.get(
    "/_mock/faults",
    summary="The active fault configuration",
    response_model=None,
    responses={200: {"model": schemas.FaultState, "description": "Active faults"}, **error_responses(400)},
)
async def get_faults(request: Request) -> Response:
    query_params(request, ())
    return json_response(core_of(request).fault_state())


@router.delete(
    "/_mock/faults",
    summary="Clear every fault",
    status_code=204,
    response_model=None,
    responses={204: {"description": "Cleared"}, **error_responses(400)},
)
async def clear_faults(request: Request) -> Response:
    query_params(request, ())
    core_of(request).set_faults(schemas.FaultConfig())
    return Response(status_code=204)


@router.patch(
    "/_mock/faults",
    summary="Change fault settings (seed, rate limit, token lifetime, listing delay), keeping the rules",
    response_model=None,
    responses={200: {"model": schemas.FaultState, "description": "Now active"}, **error_responses(400, 415, 422)},
    openapi_extra={"requestBody": json_body("FaultSettings")},
)
async def patch_faults(request: Request) -> Response:
    query_params(request, ())
    settings = _validated(schemas.FaultSettings, await json_object(request))
    core = core_of(request)
    core.update_fault_settings(settings)
    return json_response(core.fault_state())


@router.post(
    "/_mock/faults/rules",
    summary="Add one fault rule after the others (their counters are kept)",
    status_code=201,
    response_model=None,
    responses={201: {"model": schemas.FaultState, "description": "Now active"}, **error_responses(400, 415, 422)},
    openapi_extra={"requestBody": json_body("FaultRule")},
)
async def add_fault_rule(request: Request) -> Response:
    query_params(request, ())
    rule = _validated(schemas.FaultRule, await json_object(request))
    core = core_of(request)
    core.add_fault_rule(rule)
    return json_response(core.fault_state(), 201)


@router.delete(
    "/_mock/faults/rules/{ruleId}",
    summary="Remove one fault rule by id",
    status_code=204,
    response_model=None,
    responses={204: {"description": "Removed"}, **error_responses(400, 404)},
    openapi_extra={"parameters": [param("ruleId", "path", {"type": "integer", "minimum": 1}, required=True)]},
)
async def remove_fault_rule(request: Request) -> Response:
    query_params(request, ())
    rule_id = request.path_params["ruleId"]
    if not rule_id.isascii() or not rule_id.isdigit() or len(rule_id) > 18:
        raise ApiError(404, "FAULT_RULE_NOT_FOUND")
    core_of(request).remove_fault_rule(int(rule_id))
    return Response(status_code=204)
