"""Classifying One's answers and the transport's failures: the one place where a status and code become an exception.

Every answer to every call, the token endpoint's included, goes through `classify` (or
`classify_token_answer`), and every `requests` exception through `translate_exception`; callers then
act on the exception's type (retriable or fatal, person unavailable, contract violation) and code.
Nothing One sends is carried unless it is known: codes outside the contract become UNKNOWN_CODE,
and no message from One or from a library ever reaches a message here.
"""

from __future__ import annotations

import email.utils
import json
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import requests

from flagsync.adapters.one.wire import CONTRACT_ERROR_CODES, INVALID_PAGE_TOKEN, UNKNOWN_CODE
from flagsync.errors import (
    ContractViolation,
    FatalRemoteError,
    PersonIssue,
    PersonUnavailable,
    RemoteError,
    RetriableRemoteError,
)

_RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")

_PERSON_ISSUES: Final[Mapping[tuple[int, str | None], PersonIssue]] = {
    (403, "RECORD_RESTRICTED"): PersonIssue.RECORD_RESTRICTED,
    (403, "SERVICE_TEAM_NOT_PERMITTED"): PersonIssue.NOT_PERMITTED,
    (404, "PERSON_NOT_FOUND"): PersonIssue.PERSON_NOT_FOUND,
    (409, "PERSON_MERGED"): PersonIssue.PERSON_MERGED,
}

#: OpenSSL's reasons when the other end does not speak TLS at all (a plain http port behind an https URL).
_NOT_TLS_REASONS: Final = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG"}
)

_NOT_JSON: Final = object()


@dataclass(frozen=True, slots=True)
class Answer:
    """One's answer to one request: the status, the headers and the body (read up to the gateway's cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        """The body as JSON, or a sentinel that is no JSON value when it cannot be decoded (deep nesting, bad UTF-8, ...)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and over-long integers too
            return _NOT_JSON


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if _RETRY_AFTER_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_code(answer: Answer) -> str | None:
    """The `error.code` of One's error envelope: a contract code, `UNKNOWN_CODE` for anything else, None if absent."""
    payload = answer.json()
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if code is None:
        return None
    return code if isinstance(code, str) and code in CONTRACT_ERROR_CODES else UNKNOWN_CODE


def classify(answer: Answer, *, endpoint: str) -> RemoteError | None:
    """Map an answer from One's API to None (2xx) or the exception that says what the caller should do.

    `endpoint` is the URL template. Codes the callers act on (duplicate, gone, stale version, expired
    page token, 401) come back as plain `FatalRemoteError`s carrying `status` and `code`.
    """
    if 200 <= answer.status < 300:
        return None
    return remote_error(
        answer.status, error_code(answer), endpoint=endpoint, retry_after=parse_retry_after(answer.headers.get("Retry-After"))
    )


def classify_token_answer(answer: Answer, *, endpoint: str) -> RemoteError | None:
    """The token endpoint's answers: 400/401 mean the credentials were refused (fatal); the rest as `classify`."""
    if answer.status in (400, 401):
        return FatalRemoteError(
            "One rejected the client credentials", status=answer.status, code="CREDENTIALS_REJECTED", endpoint=endpoint
        )
    return classify(answer, endpoint=endpoint)


def remote_error(status: int, code: str | None, *, endpoint: str, retry_after: float | None = None) -> RemoteError:
    """The exception for a non-2xx status and a (sanitised) error code; see the table in docs/one-api.md."""
    message = f"One answered HTTP {status}{f' {code}' if code else ''} on {endpoint}"
    if status == 429 or 500 <= status < 600:
        return RetriableRemoteError(message, status=status, code=code, endpoint=endpoint, retry_after=retry_after)
    issue = PersonIssue.PERSON_ARCHIVED if status == 410 else _PERSON_ISSUES.get((status, code))
    if issue is not None:
        return PersonUnavailable(issue, status=status, endpoint=endpoint)
    if status in (415, 422) or (status == 400 and code != INVALID_PAGE_TOKEN):
        return ContractViolation(message, status=status, code=code, endpoint=endpoint)
    return FatalRemoteError(message, status=status, code=code, endpoint=endpoint)


def invalid_response(endpoint: str) -> FatalRemoteError:
    """One answered, but not as the contract describes (undecodable, wrong shape, out of order)."""
    return FatalRemoteError(
        f"One's answer on {endpoint} is not what the contract describes", code="INVALID_RESPONSE", endpoint=endpoint
    )


def translate_exception(exc: requests.RequestException, *, method: str, endpoint: str) -> RemoteError:
    """Turn a requests exception into a RemoteError that names only the endpoint template and the type.

    TLS failures are not transient, so they are fatal, and they say which kind they are: a
    certificate nobody here trusts (hint: one.ca_bundle), or a port that does not speak TLS.
    """
    kind = type(exc).__name__
    where = f"{method} {endpoint}"
    if isinstance(exc, requests.exceptions.SSLError):
        cause = _ssl_cause(exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FatalRemoteError(
                f"TLS with One failed on {where}: its certificate is not trusted here"
                " (set one.ca_bundle to the CA bundle that signed it)",
                code="TLS_UNTRUSTED",
                endpoint=endpoint,
            )
        if cause is not None and getattr(cause, "reason", None) in _NOT_TLS_REASONS:
            return FatalRemoteError(
                f"TLS with One failed on {where}: the port does not speak TLS (is one.base_url https:// on a plain http port?)",
                code="TLS_NOT_TLS",
                endpoint=endpoint,
            )
        return FatalRemoteError(f"TLS with One failed on {where} ({kind})", code="TLS_ERROR", endpoint=endpoint)
    if isinstance(exc, requests.Timeout):
        return RetriableRemoteError(f"No answer from One in time on {where} ({kind})", code="TIMEOUT", endpoint=endpoint)
    if isinstance(
        exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        return RetriableRemoteError(f"Connection to One failed on {where} ({kind})", code="CONNECTION_ERROR", endpoint=endpoint)
    return FatalRemoteError(f"Could not send {where} to One ({kind})", code="REQUEST_ERROR", endpoint=endpoint)


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The `ssl.SSLError` at the bottom of requests' and urllib3's wrappers, if any (their texts are never used)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return None
