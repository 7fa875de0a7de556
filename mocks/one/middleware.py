"""The outermost ASGI layer: correlation ids, the request journal, the rate limit and injected faults."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mocks.one.core import MockCore
from mocks.one.errors import ApiError, envelope_bytes, fault_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CORRELATION_SCOPE_KEY = "mock.correlation_id"
TRANSPORT_EXTENSION = "mock.transport"
_CORRELATION_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SECRET_IN_FORM = re.compile(r"(^|&)(client_secret=)[^&]*")
_NOT_JOURNALLED = ("/_mock", "/docs", "/openapi.json", "/favicon.ico")
_MAX_JOURNAL_BODY = 65_536
#: The longest request body read. Reading stops just past it (one declared longer is not read at all),
#: and the route answers "too large" in its own words (route_helpers.bounded_body).
MAX_BODY_BYTES = 16 * 1024 * 1024
_MAX_ERROR_BODY = 65_536


class ConnectionDroppedError(Exception):
    """Raised in place of closing the socket when the server has no socket (an in-process test client)."""


def is_one_api_path(path: str) -> bool:
    """Whether a path is journalled and subject to faults (everything but the control plane and the docs)."""
    return path != "/" and not path.startswith(_NOT_JOURNALLED)


def correlation_id_of(scope: Scope) -> str:
    """Return the correlation id the middleware gave this request."""
    value = scope.get(CORRELATION_SCOPE_KEY)
    return value if isinstance(value, str) else str(uuid.uuid4())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _journal_headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_key, raw_value in scope.get("headers", ()):
        key = bytes(raw_key).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        if key == "authorization":
            scheme = value.partition(" ")[0]
            value = f"{scheme} ***" if scheme else "***"
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


class MockMiddleware:
    """Wraps the FastAPI app: every answer carries X-Correlation-ID; One API requests are journalled and may be faulted."""

    def __init__(self, app: ASGIApp, core: MockCore) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-correlation-id")
        correlation_id = offered if offered and _CORRELATION_RE.fullmatch(offered) else str(uuid.uuid4())
        scope[CORRELATION_SCOPE_KEY] = correlation_id
        if not is_one_api_path(scope["path"]):
            await self.app(scope, receive, _tagging_send(send, correlation_id, None))
            return

        if declares_more_than(_header(scope, b"content-length"), MAX_BODY_BYTES):
            body, disconnected = b"", False  # refused by the route from the header alone: nothing to wait for
        else:
            body, disconnected = await _read_body(receive, MAX_BODY_BYTES)
        if disconnected:
            return
        journal_body = body[: 4 * _MAX_JOURNAL_BODY].decode("utf-8", errors="replace")[:_MAX_JOURNAL_BODY]
        if scope["path"] == "/connect/token":
            journal_body = _SECRET_IN_FORM.sub(r"\1\2***", journal_body)
        record = self.core.journal_start(
            method=scope["method"],
            path=scope["path"],
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=_journal_headers(scope),
            body=journal_body,
            correlation_id=correlation_id,
        )
        replay = _replaying_receive(body, receive)

        wait = self.core.take_rate_token()
        if wait is not None:
            record.injected_fault = True
            record.rate_limited = True
            error = ApiError(429, "RATE_LIMITED", headers={"Retry-After": str(wait)})
            await _send_error(send, error, correlation_id, record)
            return

        decision = self.core.decide_fault(scope["method"], scope["path"])
        if decision is not None:
            record.fault_rule = decision.rule_id
            if decision.latency_seconds > 0:
                await asyncio.sleep(decision.latency_seconds)
            if decision.status is not None or decision.drop_connection:
                record.injected_fault = True
                if decision.after_commit:
                    await self.app(scope, replay, _discarding_send)
                if decision.drop_connection:
                    record.dropped = True
                    await _drop_connection(scope)
                    return
                assert decision.status is not None  # for mypy: set whenever the connection is not dropped
                await _send_error(send, fault_error(decision.status, decision.code, decision.retry_after), correlation_id, record)
                return

        await self.app(scope, replay, _tagging_send(send, correlation_id, record))


def declares_more_than(content_length: str | None, limit: int) -> bool:
    """Whether a Content-Length header promises more than `limit` bytes (only plain ASCII digits are believed)."""
    return content_length is not None and content_length.isascii() and content_length.isdigit() and int(content_length) > limit


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body, or as soon as it is longer than `limit` the part read so far; and whether the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body", False):
            return b"".join(chunks), False


def _replaying_receive(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def error_code_of(body: bytes) -> str | None:
    """The code an error answer carries: the One envelope's `error.code`, or an OAuth answer's `error`; else None."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        error = error.get("code")
    return error[:64] if isinstance(error, str) else None


def _tagging_send(send: Send, correlation_id: str, record: Any) -> Send:
    error_body: list[bytes] | None = None

    async def tagging(message: Message) -> None:
        nonlocal error_body
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(bytes(key).lower() == b"x-correlation-id" for key, _ in headers):
                headers.append((b"x-correlation-id", correlation_id.encode("latin-1")))
            message["headers"] = headers
            if record is not None:
                record.status = int(message["status"])
                error_body = [] if record.status >= 400 else None
        elif message["type"] == "http.response.body" and error_body is not None:
            # Kept only until the last chunk: the code is in the journal before the client has the whole answer.
            if sum(map(len, error_body)) < _MAX_ERROR_BODY:
                error_body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                record.error_code = error_code_of(b"".join(error_body))
                error_body = None
        await send(message)

    return tagging


async def _discarding_send(message: Message) -> None:
    return None


async def _send_error(send: Send, error: ApiError, correlation_id: str, record: Any) -> None:
    body = envelope_bytes(error, correlation_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-correlation-id", correlation_id.encode("latin-1")),
    ]
    headers.extend((key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in error.headers.items())
    record.status = error.status
    record.error_code = error.code
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _drop_connection(scope: Scope) -> None:
    extension = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    transport = extension.get("transport") if isinstance(extension, dict) else None
    if transport is None:
        raise ConnectionDroppedError
    transport.abort()
    # Let the event loop deliver connection_lost so uvicorn knows not to answer.
    await asyncio.sleep(0.01)
