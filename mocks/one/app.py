"""The FastAPI application: the routes of api_routes, control_routes and pages, the error answers, the OpenAPI document."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mocks.one import api_routes, control_routes, pages, schemas
from mocks.one.core import MockCore
from mocks.one.errors import DEFAULT_CODES, ApiError, envelope_bytes
from mocks.one.middleware import ASGIApp, MockMiddleware, correlation_id_of
from mocks.one.openapi import install_openapi
from mocks.one.route_helpers import field_path

_log = logging.getLogger(__name__)


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
    app.include_router(api_routes.router)
    app.include_router(control_routes.router)
    app.include_router(pages.router)
    install_openapi(
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
        fields = sorted({field_path(error.get("loc", ())) for error in exc.errors()})[:50]
        return render(request, ApiError(422, "VALIDATION_FAILED", details={"fields": fields}))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        _log.error("mock handler failed: %s", type(exc).__name__)
        return render(request, ApiError(500, "INTERNAL_ERROR"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
