"""The OpenAPI document: the fragments routes describe themselves with, and the app's document with its body schemas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from mocks.one import schemas


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries for these error statuses: the error envelope, and the codes each status carries."""
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


def param(name: str, where: str, schema: dict[str, Any], *, required: bool = False, description: str = "") -> dict[str, Any]:
    """One OpenAPI parameter object (the routes read their parameters themselves, so FastAPI cannot describe them)."""
    parameter: dict[str, Any] = {"name": name, "in": where, "required": required, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


INVOLVEMENT_ID = param("involvementId", "path", {"type": "string", "pattern": schemas.INVOLVEMENT_ID_PATTERN}, required=True)


def json_body(component: str) -> dict[str, Any]:
    """A required JSON request body described by the component schema `component` (see `install_openapi`)."""
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}, "required": True}


def install_openapi(app: FastAPI, body_models: Sequence[type[BaseModel]]) -> None:
    """Serve `app`'s document with `body_models` as component schemas and the bearer security scheme."""

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
