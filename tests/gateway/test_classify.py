"""The classification table, whole: every answer and transport failure, and every field of the error it becomes."""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime

import pytest
import requests
import urllib3.exceptions

from flagsync.adapters.one.classify import (
    Answer,
    classify,
    classify_token_answer,
    invalid_response,
    parse_retry_after,
    remote_error,
    translate_exception,
)
from flagsync.errors import ContractViolation, FatalRemoteError, PersonIssue, PersonUnavailable, RetriableRemoteError

ENDPOINT = "/api/v1/involvements"
TOKEN = "/oauth/token"


def _answer(status: int, code: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    body = b"" if code is None else json.dumps({"error": {"code": code, "message": "free text", "status": status}}).encode()
    return Answer(status, requests.structures.CaseInsensitiveDict(headers or {}), body)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_success(status: int) -> None:
    """Every 2xx is success: no error."""
    assert classify(_answer(status), endpoint=ENDPOINT) is None


@pytest.mark.parametrize("status", [300, 301, 302, 304])
def test_a_redirect_is_never_success(status: int) -> None:
    """3xx is not success (redirects are never followed): a fatal error carrying the status."""
    error = classify(_answer(status), endpoint=ENDPOINT)
    assert type(error) is FatalRemoteError
    assert error.status == status


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "RATE_LIMITED", RetriableRemoteError),
        (500, None, RetriableRemoteError),
        (503, "UPSTREAM_UNAVAILABLE", RetriableRemoteError),
        (599, None, RetriableRemoteError),
        (600, None, FatalRemoteError),
        (400, "INVALID_QUERY", ContractViolation),
        (400, "INVALID_PAGE_TOKEN", FatalRemoteError),
        (415, None, ContractViolation),
        (422, "INVALID_INVOLVEMENT_TYPE", ContractViolation),
        (401, "TOKEN_EXPIRED", FatalRemoteError),
        (409, "DUPLICATE_ACTIVE_INVOLVEMENT", FatalRemoteError),
        (412, "PRECONDITION_FAILED", FatalRemoteError),
        (404, "INVOLVEMENT_NOT_FOUND", FatalRemoteError),
        (403, "SCOPE_INSUFFICIENT", FatalRemoteError),
    ],
)
def test_each_status_becomes_the_error_that_says_what_to_do(status: int, code: str | None, kind: type) -> None:
    """429, 5xx retriable; 400 (not an expired page token), 415, 422 contract violations; other 4xx fatal; all named."""
    error = classify(_answer(status, code), endpoint=ENDPOINT)
    message = " ".join(["One answered HTTP", str(status), *([code] if code else []), "on", ENDPOINT])
    assert type(error) is kind
    assert (str(error), error.status, error.code, error.endpoint) == (message, status, code, ENDPOINT)


@pytest.mark.parametrize(
    ("status", "code", "issue"),
    [
        (410, None, PersonIssue.PERSON_ARCHIVED),
        (410, "PERSON_ARCHIVED", PersonIssue.PERSON_ARCHIVED),
        (403, "RECORD_RESTRICTED", PersonIssue.RECORD_RESTRICTED),
        (403, "SERVICE_TEAM_NOT_PERMITTED", PersonIssue.NOT_PERMITTED),
        (404, "PERSON_NOT_FOUND", PersonIssue.PERSON_NOT_FOUND),
        (409, "PERSON_MERGED", PersonIssue.PERSON_MERGED),
    ],
)
def test_people_one_refuses_are_person_unavailable(status: int, code: str | None, issue: PersonIssue) -> None:
    """Archived, restricted, not permitted, not found and merged people: PersonUnavailable with the issue, status and endpoint."""
    error = classify(_answer(status, code), endpoint=ENDPOINT)
    assert isinstance(error, PersonUnavailable)
    assert (error.issue, error.status, error.endpoint) == (issue, status, ENDPOINT)


def test_retry_after_in_seconds_is_carried_on_retriable_errors() -> None:
    """A 429's Retry-After (delay-seconds) is carried as retry_after."""
    error = classify(_answer(429, "RATE_LIMITED", {"Retry-After": "2.5"}), endpoint=ENDPOINT)
    assert isinstance(error, RetriableRemoteError)
    assert error.retry_after == 2.5


def test_a_code_outside_the_contract_is_unknown_code_in_the_message_too() -> None:
    """A free-text code (say, an echoed person id) becomes UNKNOWN_CODE in the code and the message."""
    error = classify(_answer(503, "P0001234"), endpoint=ENDPOINT)
    assert error is not None
    assert error.code == "UNKNOWN_CODE"
    assert str(error) == "One answered HTTP 503 UNKNOWN_CODE on /api/v1/involvements"


@pytest.mark.parametrize("status", [400, 401])
def test_the_token_endpoint_refusing_credentials_is_fatal_and_says_so(status: int) -> None:
    """400 or 401 from the token endpoint: CREDENTIALS_REJECTED, fatal, with the status and the endpoint."""
    error = classify_token_answer(_answer(status, "INVALID_CLIENT"), endpoint=TOKEN)
    assert type(error) is FatalRemoteError
    assert (str(error), error.status, error.code, error.endpoint) == (
        "One rejected the client credentials",
        status,
        "CREDENTIALS_REJECTED",
        TOKEN,
    )


def test_the_token_endpoints_other_answers_are_classified_as_any_other() -> None:
    """A 503 from the token endpoint is retriable, and names the token endpoint."""
    error = classify_token_answer(_answer(503), endpoint=TOKEN)
    assert type(error) is RetriableRemoteError
    assert (error.status, error.endpoint) == (503, TOKEN)
    assert classify_token_answer(_answer(200), endpoint=TOKEN) is None


def test_remote_error_without_retry_after_carries_none() -> None:
    """remote_error: a retriable error without a Retry-After has retry_after None; fatal ones never carry one."""
    assert remote_error(503, None, endpoint=ENDPOINT).retry_after is None
    assert remote_error(404, "INVOLVEMENT_NOT_FOUND", endpoint=ENDPOINT, retry_after=3.0).retry_after is None


def test_invalid_response_names_the_endpoint_and_the_code() -> None:
    """An answer off the contract is fatal INVALID_RESPONSE, naming the endpoint template only."""
    error = invalid_response(ENDPOINT)
    assert type(error) is FatalRemoteError
    assert (str(error), error.code, error.endpoint, error.status) == (
        "One's answer on /api/v1/involvements is not what the contract describes",
        "INVALID_RESPONSE",
        ENDPOINT,
        None,
    )


NOW = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("5", 5.0),
        (" 7 ", 7.0),
        ("0.25", 0.25),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:28:30 -0000", 30.0),  # no zone given: read as UTC
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-5", None),
        ("1e3", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    """Retry-After as delay-seconds or an HTTP-date (a date without a zone is UTC), never negative; unreadable is None."""
    assert parse_retry_after(header, now=NOW) == seconds


def _ssl_error(cause: BaseException) -> requests.exceptions.SSLError:
    inner = urllib3.exceptions.SSLError(cause)
    outer = requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "https://one.example/x/P1", reason=inner))
    return outer


def _not_tls() -> ssl.SSLError:
    error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    error.reason = "WRONG_VERSION_NUMBER"
    return error


@pytest.mark.parametrize(
    ("exc", "kind", "code", "message"),
    [
        (
            _ssl_error(ssl.SSLCertVerificationError(1, "certificate verify failed")),
            FatalRemoteError,
            "TLS_UNTRUSTED",
            "TLS with One failed on GET /api/v1/involvements: its certificate is not trusted here"
            " (set one.ca_bundle to the CA bundle that signed it)",
        ),
        (
            _ssl_error(_not_tls()),
            FatalRemoteError,
            "TLS_NOT_TLS",
            "TLS with One failed on GET /api/v1/involvements: the port does not speak TLS"
            " (is one.base_url https:// on a plain http port?)",
        ),
        (
            _ssl_error(ssl.SSLError(1, "[SSL] handshake failure")),
            FatalRemoteError,
            "TLS_ERROR",
            "TLS with One failed on GET /api/v1/involvements (SSLError)",
        ),
        (
            requests.exceptions.SSLError("no ssl cause at all"),
            FatalRemoteError,
            "TLS_ERROR",
            "TLS with One failed on GET /api/v1/involvements (SSLError)",
        ),
        (
            requests.exceptions.ReadTimeout("https://one.example/x/P1"),
            RetriableRemoteError,
            "TIMEOUT",
            "No answer from One in time on GET /api/v1/involvements (ReadTimeout)",
        ),
        (
            requests.exceptions.ConnectionError("https://one.example/x/P1"),
            RetriableRemoteError,
            "CONNECTION_ERROR",
            "Connection to One failed on GET /api/v1/involvements (ConnectionError)",
        ),
        (
            requests.exceptions.ChunkedEncodingError("x"),
            RetriableRemoteError,
            "CONNECTION_ERROR",
            "Connection to One failed on GET /api/v1/involvements (ChunkedEncodingError)",
        ),
        (
            requests.exceptions.ContentDecodingError("x"),
            RetriableRemoteError,
            "CONNECTION_ERROR",
            "Connection to One failed on GET /api/v1/involvements (ContentDecodingError)",
        ),
        (
            requests.exceptions.InvalidURL("https://one.example/x/P1"),
            FatalRemoteError,
            "REQUEST_ERROR",
            "Could not send GET /api/v1/involvements to One (InvalidURL)",
        ),
    ],
)
def test_transport_failures_are_translated_naming_only_method_template_and_type(
    exc: requests.RequestException, kind: type, code: str, message: str
) -> None:
    """TLS failures fatal (and which kind), timeouts and broken connections retriable, the rest fatal; the URL never appears."""
    error = translate_exception(exc, method="GET", endpoint=ENDPOINT)
    assert type(error) is kind
    assert (str(error), error.code, error.endpoint, error.status) == (message, code, ENDPOINT, None)
    assert "P1" not in str(error)


def test_a_not_tls_reason_without_an_ssl_cause_is_a_plain_tls_error() -> None:
    """Only an ssl.SSLError's reason says "not TLS": a wrapper with such a reason attribute but no SSL error is TLS_ERROR."""
    exc = requests.exceptions.SSLError("wrapped")
    exc.reason = "WRONG_VERSION_NUMBER"  # type: ignore[attr-defined]  # a look-alike attribute, not an ssl.SSLError
    assert translate_exception(exc, method="GET", endpoint=ENDPOINT).code == "TLS_ERROR"


def test_the_ssl_cause_is_found_through_cause_and_context_chains() -> None:
    """The SSL error is found however it is chained: as __cause__, as __context__, or in args."""
    for link in ("__cause__", "__context__"):
        exc = requests.exceptions.SSLError("outer")
        setattr(exc, link, _not_tls())
        assert translate_exception(exc, method="DELETE", endpoint=ENDPOINT).code == "TLS_NOT_TLS"


def test_a_cyclic_exception_chain_ends() -> None:
    """Exceptions whose contexts point at each other are each looked at once: the walk ends, TLS_ERROR."""
    first, second = requests.exceptions.SSLError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert translate_exception(first, method="GET", endpoint=ENDPOINT).code == "TLS_ERROR"
