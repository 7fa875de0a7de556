"""The pages outside the OpenAPI document: the tester console at /_mock/ and its assets, the offline docs, the root."""

from __future__ import annotations

from importlib import resources
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mocks.one.control_routes import journal_query
from mocks.one.errors import ApiError
from mocks.one.journal import JournalQuery
from mocks.one.route_helpers import core_of, query_params
from mocks.one.tester_page import DEFAULT_ROWS, MAX_ROWS, PAGE_PARAMETERS, render_tester_page

#: The console loads nothing but what the mock itself serves (it must work offline).
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_CONSOLE_ASSETS = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
_STATIC = resources.files("mocks.one").joinpath("static")
_DOCS_HTML = _STATIC.joinpath("docs.html").read_text(encoding="utf-8")
_ASSETS = {name: _STATIC.joinpath(name).read_bytes() for name in _CONSOLE_ASSETS}

router = APIRouter(include_in_schema=False)


@router.get("/_mock/")
@router.get("/_mock")
async def tester_page(request: Request) -> HTMLResponse:
    core = core_of(request)
    raw = {name: value for name, value in parse_qsl(request.url.query) if name in PAGE_PARAMETERS}
    query: JournalQuery | None = None
    problem: ApiError | None = None
    try:
        given = query_params(request, PAGE_PARAMETERS, drop_blank=True)
        query = journal_query(given, default_limit=DEFAULT_ROWS, max_limit=MAX_ROWS)
    except ApiError as error:
        problem = error
    html = render_tester_page(core, str(request.base_url).rstrip("/"), query, problem, raw)
    status = 200 if problem is None else 400
    headers = {"Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-store"}
    return HTMLResponse(html, status, headers=headers)


@router.get("/_mock/static/{name}")
async def console_asset(name: str) -> Response:
    if name not in _ASSETS:
        raise ApiError(404, "NOT_FOUND")
    return Response(_ASSETS[name], media_type=_CONSOLE_ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(_DOCS_HTML)


@router.get("/")
async def root() -> Response:
    return JSONResponse({"service": "One-style mock", "tester": "/_mock/", "docs": "/docs", "openapi": "/openapi.json"})
