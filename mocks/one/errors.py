"""The mock's error type and the One error envelope it renders, with fixed messages that never echo submitted values."""

from __future__ import annotations

import json
from collections.abc import Mapping

DEFAULT_CODES: Mapping[int, str] = {
    400: "INVALID_QUERY",
    401: "TOKEN_INVALID",
    403: "SCOPE_INSUFFICIENT",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    410: "GONE",
    412: "PRECONDITION_FAILED",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    428: "PRECONDITION_REQUIRED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "UPSTREAM_UNAVAILABLE",
    503: "MAINTENANCE",
    504: "GATEWAY_TIMEOUT",
}

MESSAGES: Mapping[str, str] = {
    "MALFORMED_JSON": "The request body is not a well-formed JSON object.",
    "INVALID_QUERY": "A query parameter is missing, unknown or out of range.",
    "INVALID_PAGE_TOKEN": "The page token is invalid or has expired; restart the listing.",
    "IDEMPOTENCY_KEY_REQUIRED": "An Idempotency-Key header of 1 to 64 visible ASCII characters is required.",
    "TOKEN_MISSING": "A bearer token is required.",
    "TOKEN_EXPIRED": "The bearer token has expired.",
    "TOKEN_INVALID": "The bearer token is not recognised.",
    "SCOPE_INSUFFICIENT": "The token's scope does not allow this call.",
    "SERVICE_TEAM_NOT_PERMITTED": "The involvement belongs to another service team.",
    "RECORD_RESTRICTED": "The person record is restricted.",
    "PERSON_NOT_FOUND": "No such person.",
    "INVOLVEMENT_NOT_FOUND": "No such involvement.",
    "FAULT_RULE_NOT_FOUND": "No such fault rule (it may have been removed or replaced).",
    "NOT_FOUND": "No such resource.",
    "METHOD_NOT_ALLOWED": "The method is not allowed on this resource.",
    "DUPLICATE_ACTIVE_INVOLVEMENT": "The person already has an active involvement of this type for this service team.",
    "PERSON_MERGED": "The person record has been merged into another record.",
    "PERSON_ARCHIVED": "The person record is archived.",
    "PRECONDITION_FAILED": "The If-Match version does not match the current version.",
    "PRECONDITION_REQUIRED": "An If-Match header is required.",
    "UNSUPPORTED_MEDIA_TYPE": "The request body must be application/json.",
    "UNKNOWN_FIELD": "The request body contains fields that are not allowed.",
    "INVALID_INVOLVEMENT_TYPE": "The involvement type is missing or not permitted for this service team.",
    "IDEMPOTENCY_KEY_REUSED": "The Idempotency-Key was already used with a different request.",
    "VALIDATION_FAILED": "The request body does not match the expected schema.",
    "RATE_LIMITED": "Too many requests; retry after the indicated delay.",
    "INTERNAL_ERROR": "An internal error occurred.",
    "UPSTREAM_UNAVAILABLE": "An upstream system is unavailable.",
    "MAINTENANCE": "The service is down for maintenance.",
    "GATEWAY_TIMEOUT": "The gateway timed out; the write may have been committed.",
}


class ApiError(Exception):
    """A One API error: rendered as the error envelope with the given status, code and details."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        details: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.details: dict[str, object] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})
        self.message = message or MESSAGES.get(code, "The request failed.")


def envelope_bytes(error: ApiError, correlation_id: str) -> bytes:
    """Return the JSON error envelope for `error`, tagged with the request's correlation id."""
    body = {
        "error": {
            "status": error.status,
            "code": error.code,
            "message": error.message,
            "correlationId": correlation_id,
            "details": error.details,
        }
    }
    return json.dumps(body, separators=(",", ":")).encode()


def fault_error(status: int, code: str | None, retry_after: int | None) -> ApiError:
    """Build the error an injected fault answers with, adding the headers its status calls for."""
    headers: dict[str, str] = {}
    chosen = code or DEFAULT_CODES.get(status, "INJECTED_FAULT")
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    elif status == 429:
        headers["Retry-After"] = "1"
    return ApiError(status, chosen, headers=headers)
