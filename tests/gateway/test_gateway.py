"""Tests of the HTTP gateway to One against `responses`, with strict matchers and every registered answer used."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pydantic
import pytest
import requests
import responses
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from responses import matchers

from flagsync.adapters.one.classify import Answer, classify, parse_retry_after
from flagsync.adapters.one.endpoint import OneEndpoint
from flagsync.adapters.one.gateway import HttpFlagGateway
from flagsync.adapters.one.pacer import Pacer
from flagsync.adapters.one.wire import CREATE_BODY, INVOLVEMENT, INVOLVEMENTS, PERSON_INVOLVEMENTS, CreateFlagBody
from flagsync.core.model import Flag
from flagsync.errors import (
    ContractViolation,
    FatalRemoteError,
    PersonIssue,
    PersonUnavailable,
    RemoteError,
    RetriableRemoteError,
    RunInterrupted,
)
from flagsync.ports import CreateOutcome, NoTelemetry, PageProbe

BASE = "https://one.test"
TOKEN_URL = f"{BASE}/connect/token"
LIST_URL = f"{BASE}/api/v1/involvements"
SECRET = "s3cret-Client-Value"
PERSON = "P0001234"
CANARY = "P-CANARY-123"
PERSON_URL = f"{BASE}/api/v1/people/{PERSON}/involvements"
TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": "flagsync",
    "client_secret": SECRET,
    "scope": "involvements.read involvements.write",
}


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_gateway(sleeps: list[float], clock: FakeClock) -> Iterator[Callable[..., HttpFlagGateway]]:
    made: list[HttpFlagGateway] = []

    def make(**overrides: Any) -> HttpFlagGateway:
        endpoint = endpoint_with(overrides)
        gateway = HttpFlagGateway(endpoint, **{"sleep": sleeps.append, "clock": clock, **overrides})
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.close()


_ENDPOINT_FIELDS = (
    "base_url",
    "token_url",
    "client_id",
    "client_secret",
    "ca_bundle",
    "proxy",
    "connect_timeout",
    "read_timeout",
)


def endpoint_with(overrides: dict[str, Any]) -> OneEndpoint:
    """The test endpoint, with any of its fields overridden (they are taken out of `overrides`)."""
    fields: dict[str, Any] = {"base_url": BASE, "token_url": TOKEN_URL, "client_id": "flagsync", "client_secret": SECRET}
    for name in _ENDPOINT_FIELDS:
        if name in overrides:
            fields[name] = overrides.pop(name)
    fields["client_secret"] = pydantic.SecretStr(fields["client_secret"])
    return OneEndpoint(**fields)


@pytest.fixture
def gateway(make_gateway: Callable[..., HttpFlagGateway]) -> HttpFlagGateway:
    return make_gateway()


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=buffer),
        cache_logger_on_first_use=False,
    )
    yield buffer
    structlog.reset_defaults()


def add_token(rsps: responses.RequestsMock, value: str = "tok-1", expires_in: int = 3600) -> None:
    rsps.post(
        TOKEN_URL,
        json={"access_token": value, "token_type": "Bearer", "expires_in": expires_in, "scope": TOKEN_FORM["scope"]},
        match=[matchers.urlencoded_params_matcher(TOKEN_FORM)],
    )


def item(involvement_id: str, person_id: str, version: int = 1, **changes: Any) -> dict[str, Any]:
    resource = {
        "id": involvement_id,
        "personId": person_id,
        "serviceTeam": "PIAS",
        "involvementType": "PIAS_WORKING_WITH_FAMILY",
        "status": "active",
        "startDate": "2026-11-24",
        "lastUpdated": "2026-11-24T20:00:00Z",
        "version": version,
    }
    resource.update(changes)
    return resource


def envelope(status: int, code: str) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": "safe text", "correlationId": "c-1", "details": {}}}


def page_query(page_token: str | None = None, size: int = 100) -> Any:
    query = {"status": "active", "pageSize": str(size)}
    if page_token is not None:
        query["pageToken"] = page_token
    return matchers.query_param_matcher(query, strict_match=True)


def create_matchers(key: str) -> list[Any]:
    return [
        matchers.json_params_matcher({"involvementType": "PIAS_WORKING_WITH_FAMILY"}, strict_match=True),
        matchers.header_matcher({"Idempotency-Key": key, "Content-Type": "application/json"}),
    ]


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, requests.structures.CaseInsensitiveDict(headers or {}), body)


# --------------------------------------------------------------------------------------------
# Configuration


def test_transport_pool_is_sized_and_urllib3_retries_are_off(make_gateway: Callable[..., HttpFlagGateway]) -> None:
    """The transport adapter's pool fits max_concurrency and urllib3 retries nothing itself."""
    adapter = make_gateway(max_concurrency=12)._transport.adapter
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert getattr(adapter, "_pool_maxsize", 0) >= 12
    assert adapter.max_retries.total == 0
    assert adapter.max_retries.read is False


# --------------------------------------------------------------------------------------------
# Tokens


def test_token_is_fetched_once_and_reused(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """One token serves several calls while it is valid."""
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [], "nextPageToken": None}, match=[page_query(size=1)])
    assert gateway.probe() == PageProbe(0, False)
    assert gateway.probe() == PageProbe(0, False)
    assert [call.request.url for call in rsps.calls].count(TOKEN_URL) == 1
    assert rsps.calls[1].request.headers["Authorization"] == "Bearer tok-1"


def test_token_is_renewed_shortly_before_expiry(rsps: responses.RequestsMock, gateway: HttpFlagGateway, clock: FakeClock) -> None:
    """A token about to expire is replaced before it is used again."""
    add_token(rsps, "tok-1", expires_in=3600)
    add_token(rsps, "tok-2", expires_in=3600)
    rsps.get(LIST_URL, json={"items": []}, match=[page_query(size=1)])
    gateway.probe()
    clock.now += 3600 - 30
    gateway.probe()
    assert rsps.calls[-1].request.headers["Authorization"] == "Bearer tok-2"


def test_a_401_fetches_a_new_token_once_and_retries(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float]
) -> None:
    """An expired token (401) is replaced once and the call repeated, without a backoff sleep."""
    add_token(rsps, "tok-1")
    rsps.get(
        LIST_URL,
        status=401,
        json=envelope(401, "TOKEN_EXPIRED"),
        match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})],
    )
    add_token(rsps, "tok-2")
    rsps.get(
        LIST_URL, json={"items": [item("INV-1", PERSON)]}, match=[matchers.header_matcher({"Authorization": "Bearer tok-2"})]
    )
    assert gateway.probe() == PageProbe(1, False)
    assert sleeps == []


def test_a_second_401_is_fatal(rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float]) -> None:
    """A 401 with a fresh token is not retried again."""
    add_token(rsps, "tok-1")
    add_token(rsps, "tok-2")
    rsps.get(LIST_URL, status=401, json=envelope(401, "TOKEN_INVALID"))
    with pytest.raises(FatalRemoteError) as info:
        gateway.probe()
    assert info.value.status == 401
    assert not isinstance(info.value, RetriableRemoteError)
    assert len(rsps.calls) == 4
    assert sleeps == []


@pytest.mark.parametrize(("status", "body"), [(400, {"error": "invalid_request"}), (401, {"error": "invalid_client"})])
def test_rejected_credentials_are_fatal_without_the_secret(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, status: int, body: dict[str, str]
) -> None:
    """A token endpoint 400/401 says the credentials were rejected and never shows the secret."""
    rsps.post(TOKEN_URL, status=status, json=body)
    with pytest.raises(FatalRemoteError, match="One rejected the client credentials") as info:
        gateway.probe()
    assert SECRET not in repr(info.value.args)


def test_token_answer_without_a_token_is_fatal(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A token answer that carries no access token is reported as an invalid response."""
    rsps.post(TOKEN_URL, json={"token_type": "Bearer"})
    with pytest.raises(FatalRemoteError) as info:
        gateway.probe()
    assert info.value.code == "INVALID_RESPONSE"


def test_token_endpoint_outage_is_retried(rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float]) -> None:
    """A 503 from the token endpoint is retried like any other call."""
    rsps.post(TOKEN_URL, status=503, json=envelope(503, "MAINTENANCE"))
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": []})
    assert gateway.probe() == PageProbe(0, False)
    assert len(sleeps) == 1


def test_every_request_has_explicit_timeouts(rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]) -> None:
    """Every request, the token request included, carries the (connect, read) timeouts."""
    gateway = make_gateway(connect_timeout=2.5, read_timeout=11.0)
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": []})
    rsps.post(PERSON_URL, status=201, json=item("INV-1", PERSON))
    gateway.probe()
    gateway.create_flag(PERSON, "key-1")
    assert [getattr(call.request, "req_kwargs", {})["timeout"] for call in rsps.calls] == [(2.5, 11.0)] * 3


# --------------------------------------------------------------------------------------------
# Create


def test_create_sends_only_the_flag_with_key_and_correlation_id(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A create posts exactly the allowed body with the caller's Idempotency-Key and a correlation id."""
    add_token(rsps)
    rsps.post(PERSON_URL, status=201, json=item("INV-1", PERSON), match=create_matchers("key-1"))
    assert gateway.create_flag(PERSON, "key-1") is CreateOutcome.CREATED
    sent = rsps.calls[1].request
    assert sent.body == b'{"involvementType":"PIAS_WORKING_WITH_FAMILY"}'
    assert sent.headers["X-Correlation-ID"]


def test_retried_create_keeps_its_idempotency_key(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float]
) -> None:
    """A 503 then 201: both requests carry the same Idempotency-Key and correlation id."""
    add_token(rsps)
    rsps.post(PERSON_URL, status=503, json=envelope(503, "UPSTREAM_UNAVAILABLE"), match=create_matchers("key-7"))
    rsps.post(PERSON_URL, status=201, json=item("INV-1", PERSON), match=create_matchers("key-7"))
    assert gateway.create_flag(PERSON, "key-7") is CreateOutcome.CREATED
    posts = [call.request for call in rsps.calls if call.request.url == PERSON_URL]
    assert [post.headers["Idempotency-Key"] for post in posts] == ["key-7", "key-7"]
    assert posts[0].headers["X-Correlation-ID"] == posts[1].headers["X-Correlation-ID"]
    assert len(sleeps) == 1


def test_gateway_timeout_after_commit_is_retried_with_the_same_key(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway
) -> None:
    """A 504 (maybe committed) is retried with the same key, so One replays instead of duplicating."""
    add_token(rsps)
    rsps.post(PERSON_URL, status=504, json=envelope(504, "GATEWAY_TIMEOUT"), match=create_matchers("key-8"))
    rsps.post(PERSON_URL, status=201, json=item("INV-1", PERSON), match=create_matchers("key-8"))
    assert gateway.create_flag(PERSON, "key-8") is CreateOutcome.CREATED


def test_duplicate_active_involvement_means_already_present(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """409 DUPLICATE_ACTIVE_INVOLVEMENT is reported as ALREADY_PRESENT."""
    add_token(rsps)
    body = envelope(409, "DUPLICATE_ACTIVE_INVOLVEMENT")
    body["error"]["details"] = {"existingInvolvementId": "INV-9"}
    rsps.post(PERSON_URL, status=409, json=body, match=create_matchers("key-1"))
    assert gateway.create_flag(PERSON, "key-1") is CreateOutcome.ALREADY_PRESENT


@pytest.mark.parametrize(
    ("status", "code", "issue"),
    [
        (404, "PERSON_NOT_FOUND", PersonIssue.PERSON_NOT_FOUND),
        (410, "PERSON_ARCHIVED", PersonIssue.PERSON_ARCHIVED),
        (409, "PERSON_MERGED", PersonIssue.PERSON_MERGED),
        (403, "RECORD_RESTRICTED", PersonIssue.RECORD_RESTRICTED),
        (403, "SERVICE_TEAM_NOT_PERMITTED", PersonIssue.NOT_PERMITTED),
    ],
)
def test_person_problems_are_person_unavailable_and_not_retried(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float], *, status: int, code: str, issue: PersonIssue
) -> None:
    """One's refusals for a person become PersonUnavailable with the issue, without any retry."""
    add_token(rsps)
    rsps.post(PERSON_URL, status=status, json=envelope(status, code))
    with pytest.raises(PersonUnavailable) as info:
        gateway.create_flag(PERSON, "key-1")
    assert info.value.issue is issue
    assert sleeps == []


@pytest.mark.parametrize("person_id", [CANARY + "/../x", "", "-leading-dash", "a b", "x" * 65, "P1?admin=1"])
def test_malformed_person_ids_never_reach_a_url(rsps: responses.RequestsMock, gateway: HttpFlagGateway, person_id: str) -> None:
    """A malformed person id is refused before any request, and the refusal does not repeat it."""
    with pytest.raises(ContractViolation) as info:
        gateway.create_flag(person_id, "key-1")
    with pytest.raises(ContractViolation):
        gateway.person_flags(person_id)
    assert person_id not in str(info.value) or not person_id
    assert len(rsps.calls) == 0


def test_bad_idempotency_key_is_refused_before_sending(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """An empty or over-long Idempotency-Key is refused locally."""
    for key in ("", "k" * 65, "with space"):
        with pytest.raises(ContractViolation):
            gateway.create_flag(PERSON, key)
    assert len(rsps.calls) == 0


def test_the_create_body_is_exactly_the_bare_flag() -> None:
    """The one body the gateway can send is the bare flag, byte for byte, derived from the schema."""
    assert CREATE_BODY == b'{"involvementType":"PIAS_WORKING_WITH_FAMILY"}'


def test_no_call_carries_another_body(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """Across every call the gateway makes, the only bodies sent are the token form (to the token URL) and the flag."""
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [item("INV-1", PERSON)], "nextPageToken": None})
    rsps.get(PERSON_URL, json={"items": [item("INV-1", PERSON)]})
    rsps.post(PERSON_URL, status=201, json=item("INV-2", PERSON))
    rsps.delete(delete_url(), status=412, json=envelope(412, "PRECONDITION_FAILED"))
    rsps.get(delete_url(), json=item("INV-1", PERSON, 2), headers={"ETag": 'W/"2"'})
    rsps.delete(delete_url(), status=204)
    gateway.list_flags()
    gateway.person_flags(PERSON)
    gateway.create_flag(PERSON, "key-1")
    gateway.remove_flag(Flag("INV-1", PERSON, 1))
    for call in rsps.calls:
        body = call.request.body
        if call.request.url == TOKEN_URL:
            continue
        assert body in (None, CREATE_BODY), f"{call.request.method} {call.request.url} carried {body!r}"


def test_body_model_forbids_extra_fields_without_echoing_them() -> None:
    """The body model rejects extra fields and another type, and its errors hide the input."""
    with pytest.raises(pydantic.ValidationError) as info:
        CreateFlagBody(involvementType="PIAS_WORKING_WITH_FAMILY", dateOfBirth="2012-01-01")  # type: ignore[call-arg]  # the point
    assert "2012-01-01" not in str(info.value)
    with pytest.raises(pydantic.ValidationError):
        CreateFlagBody(involvementType="OTHER")
    assert CreateFlagBody().model_dump(mode="json") == {"involvementType": "PIAS_WORKING_WITH_FAMILY"}


def test_writes_are_bounded_by_max_concurrency(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]
) -> None:
    """While one write is in flight with max_concurrency=1, no second write slot is free."""
    gateway = make_gateway(max_concurrency=1)
    slot_free_during_write: list[bool] = []

    def created(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        free = gateway._writes.acquire(blocking=False)
        if free:
            gateway._writes.release()
        slot_free_during_write.append(free)
        return 201, {}, json.dumps(item("INV-1", PERSON))

    add_token(rsps)
    rsps.add_callback(responses.POST, PERSON_URL, callback=created)
    gateway.create_flag(PERSON, "key-1")
    assert slot_free_during_write == [False]
    assert gateway._writes.acquire(blocking=False)


# --------------------------------------------------------------------------------------------
# Listing


def test_listing_follows_pages_and_keeps_only_well_formed_flags_of_ours(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, log_buffer: io.StringIO
) -> None:
    """Pages are followed to the end; foreign, inactive and malformed items are left out (and counted)."""
    add_token(rsps)
    rsps.get(
        LIST_URL,
        json={
            "items": [
                item("INV-1", "P1"),
                item("INV-2", "P2", serviceTeam="YOT"),
                item("INV-3", "bad id/"),
                item("INV-4", "P4", involvementType="OTHER"),
            ],
            "nextPageToken": "t1",
        },
        match=[page_query()],
    )
    rsps.get(
        LIST_URL,
        json={"items": [item("INV-5", "P5", status="inactive"), item("INV-6", "P6", version=3)]},
        match=[page_query("t1")],
    )
    assert gateway.list_flags() == [Flag("INV-1", "P1", 1), Flag("INV-6", "P6", 3)]
    skipped = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    assert sum(event["count"] for event in skipped if event["reason"] == "not_ours_or_inactive") == 3
    assert sum(event["count"] for event in skipped if event["reason"] == "malformed") == 1
    assert "bad id" not in log_buffer.getvalue()


def test_a_cancelled_listing_stops_before_its_next_page(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """Once `cancel` is set the listing asks One for no further page and raises RunInterrupted, not a partial list."""
    add_token(rsps)
    cancel = threading.Event()

    def first_page(request: Any) -> tuple[int, dict[str, str], str]:
        cancel.set()  # the run gave up on the listing while this page was on its way
        return 200, {"Content-Type": "application/json"}, json.dumps({"items": [item("INV-1", "P1")], "nextPageToken": "t1"})

    rsps.add_callback(responses.GET, LIST_URL, callback=first_page, match=[page_query()])
    with pytest.raises(RunInterrupted, match="cancelled"):
        gateway.list_flags(cancel=cancel)
    assert [call.request.url for call in rsps.calls if "pageToken" in (call.request.url or "")] == []


def test_listing_uses_the_configured_page_size(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]
) -> None:
    """The pageSize query parameter is the configured page size."""
    gateway = make_gateway(page_size=25)
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [], "nextPageToken": None}, match=[page_query(size=25)])
    assert gateway.list_flags() == []


def test_expired_page_token_restarts_the_listing(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """400 INVALID_PAGE_TOKEN starts the listing again from the first page and still returns it whole."""
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [item("INV-1", "P1")], "nextPageToken": "old"}, match=[page_query()])
    rsps.get(LIST_URL, status=400, json=envelope(400, "INVALID_PAGE_TOKEN"), match=[page_query("old")])
    rsps.get(LIST_URL, json={"items": [item("INV-1", "P1")], "nextPageToken": "new"}, match=[page_query()])
    rsps.get(LIST_URL, json={"items": [item("INV-2", "P2")], "nextPageToken": None}, match=[page_query("new")])
    assert gateway.list_flags() == [Flag("INV-1", "P1", 1), Flag("INV-2", "P2", 1)]


def test_listing_restarts_are_bounded(rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]) -> None:
    """A listing whose page tokens keep expiring fails after the allowed restarts instead of looping."""
    gateway = make_gateway(listing_restarts=2)
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [item("INV-1", "P1")], "nextPageToken": "t"}, match=[page_query()])
    rsps.get(LIST_URL, status=400, json=envelope(400, "INVALID_PAGE_TOKEN"), match=[page_query("t")])
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "INVALID_PAGE_TOKEN"
    assert len([call for call in rsps.calls if "pageToken" in str(call.request.url)]) == 3


def test_listing_that_goes_round_in_a_circle_fails(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A repeated page token is an invalid response, not an endless loop."""
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [], "nextPageToken": "same"}, match=[page_query()])
    rsps.get(LIST_URL, json={"items": [], "nextPageToken": "same"}, match=[page_query("same")])
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "INVALID_RESPONSE"


@pytest.mark.parametrize("body", [b"<html>proxy</html>", b'{"items": "nope"}', b"[]", b'{"items": [], "nextPageToken": 5}'])
def test_listing_with_an_unexpected_body_fails_whole(rsps: responses.RequestsMock, gateway: HttpFlagGateway, body: bytes) -> None:
    """A page that is not the contract's shape fails the listing rather than yielding a partial one."""
    add_token(rsps)
    rsps.get(LIST_URL, body=body, content_type="application/json")
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "INVALID_RESPONSE"


def test_listing_failure_after_some_pages_raises(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]
) -> None:
    """A later page that keeps failing makes the whole listing fail: never a partial list."""
    gateway = make_gateway(retry_attempts=2)
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [item("INV-1", "P1")], "nextPageToken": "t1"}, match=[page_query()])
    rsps.get(LIST_URL, status=500, json=envelope(500, "INTERNAL_ERROR"), match=[page_query("t1")])
    with pytest.raises(RetriableRemoteError):
        gateway.list_flags()


def test_person_flags_reads_that_person_only(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """person_flags asks for the person's active involvements and keeps only ours for that person."""
    add_token(rsps)
    rsps.get(
        PERSON_URL,
        json={"items": [item("INV-1", PERSON), item("INV-2", PERSON, serviceTeam="YOT"), item("INV-3", "P999")]},
        match=[matchers.query_param_matcher({"status": "active"}, strict_match=True)],
    )
    assert gateway.person_flags(PERSON) == [Flag("INV-1", PERSON, 1)]


def test_probe_lists_one_item(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """probe fetches a token and one page of size 1, saying how many items it held and whether more follow."""
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [item("INV-1", "P1")], "nextPageToken": "more"}, match=[page_query(size=1)])
    assert gateway.probe() == PageProbe(1, True)


# --------------------------------------------------------------------------------------------
# Remove


def delete_url(involvement_id: str = "INV-1") -> str:
    return f"{BASE}/api/v1/involvements/{involvement_id}"


def if_match(version: int) -> Any:
    return matchers.header_matcher({"If-Match": f'W/"{version}"'})


def test_remove_sends_if_match_with_the_version(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A removal deletes the involvement with If-Match on its version and no body."""
    add_token(rsps)
    rsps.delete(delete_url(), status=204, match=[if_match(3)])
    gateway.remove_flag(Flag("INV-1", PERSON, 3))
    assert rsps.calls[1].request.body is None


def test_remove_of_a_gone_flag_is_done(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """404 INVOLVEMENT_NOT_FOUND on delete counts as removed."""
    add_token(rsps)
    rsps.delete(delete_url(), status=404, json=envelope(404, "INVOLVEMENT_NOT_FOUND"))
    gateway.remove_flag(Flag("INV-1", PERSON, 1))


def test_remove_404_without_the_code_is_not_taken_as_done(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A bare 404 (a wrong route, say) is an error, so a removal is never forgotten by mistake."""
    add_token(rsps)
    rsps.delete(delete_url(), status=404, body="not found")
    with pytest.raises(FatalRemoteError):
        gateway.remove_flag(Flag("INV-1", PERSON, 1))


@pytest.mark.parametrize(("status", "code"), [(412, "PRECONDITION_FAILED"), (428, "PRECONDITION_REQUIRED")])
def test_stale_version_is_re_read_and_retried(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, status: int, code: str
) -> None:
    """412/428 leads to a GET for the current ETag and a delete with that version."""
    add_token(rsps)
    rsps.delete(delete_url(), status=status, json=envelope(status, code), match=[if_match(1)])
    rsps.get(delete_url(), json=item("INV-1", PERSON, version=5), headers={"ETag": 'W/"5"'})
    rsps.delete(delete_url(), status=204, match=[if_match(5)])
    gateway.remove_flag(Flag("INV-1", PERSON, 1))


def test_stale_version_of_a_flag_gone_meanwhile_is_done(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """412 followed by a 404 on the re-read counts as removed."""
    add_token(rsps)
    rsps.delete(delete_url(), status=412, json=envelope(412, "PRECONDITION_FAILED"))
    rsps.get(delete_url(), status=404, json=envelope(404, "INVOLVEMENT_NOT_FOUND"))
    gateway.remove_flag(Flag("INV-1", PERSON, 1))


def test_precondition_retries_are_bounded(rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]) -> None:
    """A flag whose version keeps changing fails after the allowed re-reads."""
    gateway = make_gateway(precondition_retries=1)
    add_token(rsps)
    rsps.delete(delete_url(), status=412, json=envelope(412, "PRECONDITION_FAILED"))
    rsps.get(delete_url(), json=item("INV-1", PERSON, version=2), headers={"ETag": 'W/"2"'})
    with pytest.raises(FatalRemoteError) as info:
        gateway.remove_flag(Flag("INV-1", PERSON, 1))
    assert info.value.status == 412
    assert len([call for call in rsps.calls if call.request.method == "DELETE"]) == 2


def test_remove_refuses_an_involvement_that_is_not_ours(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """If the re-read shows another team's involvement, nothing more is deleted."""
    add_token(rsps)
    rsps.delete(delete_url(), status=412, json=envelope(412, "PRECONDITION_FAILED"))
    rsps.get(delete_url(), json=item("INV-1", PERSON, serviceTeam="YOT"), headers={"ETag": 'W/"2"'})
    with pytest.raises(FatalRemoteError) as info:
        gateway.remove_flag(Flag("INV-1", PERSON, 1))
    assert info.value.code == "NOT_OURS"


def test_involvement_ids_are_escaped_in_the_url(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """An involvement id cannot change the path it is put into."""
    add_token(rsps)
    rsps.delete(f"{BASE}/api/v1/involvements/a%2Fb", status=204)
    gateway.remove_flag(Flag("a/b", PERSON, 1))
    with pytest.raises(ContractViolation):
        gateway.remove_flag(Flag("..", PERSON, 1))


# --------------------------------------------------------------------------------------------
# Retries


def test_retry_after_is_honoured(rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float]) -> None:
    """429 with Retry-After waits at least that long before the next try."""
    add_token(rsps)
    rsps.get(LIST_URL, status=429, json=envelope(429, "RATE_LIMITED"), headers={"Retry-After": "7"})
    rsps.get(LIST_URL, json={"items": []})
    assert gateway.probe() == PageProbe(0, False)
    assert sleeps == [7.0]


def test_retry_after_is_capped(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], sleeps: list[float]
) -> None:
    """A huge Retry-After is capped at retry_max_delay."""
    gateway = make_gateway(retry_max_delay=300.0)
    add_token(rsps)
    rsps.get(LIST_URL, status=503, json=envelope(503, "MAINTENANCE"), headers={"Retry-After": "100000"})
    rsps.get(LIST_URL, json={"items": []})
    gateway.probe()
    assert sleeps == [300.0]


def test_backoff_grows_without_retry_after(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], sleeps: list[float]
) -> None:
    """Without Retry-After the waits follow jittered exponential backoff."""
    gateway = make_gateway(retry_attempts=4)
    add_token(rsps)
    rsps.get(LIST_URL, status=500, json=envelope(500, "INTERNAL_ERROR"))
    with pytest.raises(RetriableRemoteError):
        gateway.probe()
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0.5 * 2**attempt <= delay <= 0.5 * 2**attempt + 0.5


def test_attempts_are_bounded(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], sleeps: list[float]
) -> None:
    """A call that keeps failing is tried retry_attempts times, then the retriable error escapes."""
    gateway = make_gateway(retry_attempts=3)
    add_token(rsps)
    rsps.post(PERSON_URL, status=502, json=envelope(502, "UPSTREAM_UNAVAILABLE"))
    with pytest.raises(RetriableRemoteError) as info:
        gateway.create_flag(PERSON, "key-1")
    assert info.value.status == 502
    assert len([call for call in rsps.calls if call.request.url == PERSON_URL]) == 3
    assert len(sleeps) == 2


def test_deadline_stops_retrying(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], sleeps: list[float]
) -> None:
    """A wait that would pass the deadline is not taken: the error escapes instead."""
    gateway = make_gateway(retry_attempts=10, retry_deadline=60.0)
    add_token(rsps)
    rsps.get(LIST_URL, status=503, json=envelope(503, "MAINTENANCE"), headers={"Retry-After": "120"})
    with pytest.raises(RetriableRemoteError):
        gateway.probe()
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(422, "UNKNOWN_FIELD"), (415, "UNSUPPORTED_MEDIA_TYPE"), (400, "MALFORMED_JSON"), (403, "SCOPE_INSUFFICIENT")],
)
def test_fatal_errors_are_not_retried(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float], status: int, code: str
) -> None:
    """A fatal answer is raised at once, with no retry."""
    add_token(rsps)
    rsps.post(PERSON_URL, status=status, json=envelope(status, code))
    with pytest.raises(FatalRemoteError) as info:
        gateway.create_flag(PERSON, "key-1")
    assert info.value.code == code
    assert sleeps == []
    assert len(rsps.calls) == 2


def test_transport_failures_are_retried(rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float]) -> None:
    """A dropped connection is retried and the create then succeeds."""
    add_token(rsps)
    rsps.post(PERSON_URL, body=requests.ConnectionError("Connection reset by peer"))
    rsps.post(PERSON_URL, status=201, json=item("INV-1", PERSON))
    assert gateway.create_flag(PERSON, "key-1") is CreateOutcome.CREATED
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("exception", "code"),
    [
        (requests.ConnectionError, "CONNECTION_ERROR"),
        (requests.exceptions.ChunkedEncodingError, "CONNECTION_ERROR"),
        (requests.ReadTimeout, "TIMEOUT"),
        (requests.ConnectTimeout, "TIMEOUT"),
    ],
)
def test_transport_failures_are_translated_without_library_text(
    rsps: responses.RequestsMock,
    make_gateway: Callable[..., HttpFlagGateway],
    exception: type[requests.RequestException],
    code: str,
) -> None:
    """requests exceptions become RetriableRemoteError with a local code, without the URL or the library's text."""
    gateway = make_gateway(retry_attempts=1)
    add_token(rsps)
    rsps.post(PERSON_URL, body=exception(f"HTTPSConnectionPool: Max retries exceeded with url: {PERSON_URL}"))
    with pytest.raises(RetriableRemoteError) as info:
        gateway.create_flag(PERSON, "key-1")
    assert info.value.code == code
    assert PERSON not in str(info.value)
    assert "Max retries" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_a_tls_failure_is_fatal_and_not_retried(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], sleeps: list[float]
) -> None:
    """A TLS failure is not transient: it fails at once, without the library's text."""
    gateway = make_gateway(retry_attempts=4)
    add_token(rsps)
    rsps.post(PERSON_URL, body=requests.exceptions.SSLError(f"HTTPSConnectionPool: Max retries exceeded with url: {PERSON_URL}"))
    with pytest.raises(FatalRemoteError) as info:
        gateway.create_flag(PERSON, "key-1")
    assert info.value.code == "TLS_ERROR"
    assert PERSON not in str(info.value)
    assert sleeps == []


def test_other_request_failures_are_fatal(rsps: responses.RequestsMock, gateway: HttpFlagGateway, sleeps: list[float]) -> None:
    """A requests failure that retrying cannot mend (an invalid header, say) is fatal and not retried."""
    add_token(rsps)
    rsps.post(PERSON_URL, body=requests.exceptions.InvalidHeader(f"bad header for {PERSON_URL}"))
    with pytest.raises(FatalRemoteError) as info:
        gateway.create_flag(PERSON, "key-1")
    assert info.value.code == "REQUEST_ERROR"
    assert PERSON not in str(info.value)
    assert sleeps == []


def test_redirects_are_not_followed(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A redirect is an error, so the token never travels to another address."""
    add_token(rsps)
    rsps.get(LIST_URL, status=302, headers={"Location": "https://elsewhere.test/"})
    with pytest.raises(FatalRemoteError):
        gateway.probe()


def test_callbacks_see_templates_statuses_and_retry_reasons(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]
) -> None:
    """Telemetry hears of every exchange once and every retry once, with endpoint templates only."""
    exchanges: list[tuple[str, str, int | None]] = []
    retries: list[tuple[str, str]] = []

    class Recording(NoTelemetry):
        def request_done(self, method: str, endpoint: str, status: int | None, seconds: float) -> None:
            exchanges.append((method, endpoint, status))

        def retry_scheduled(self, endpoint: str, reason: str) -> None:
            retries.append((endpoint, reason))

    gateway = make_gateway(telemetry=Recording())
    add_token(rsps)
    rsps.post(PERSON_URL, body=requests.ConnectionError("reset"))
    rsps.post(PERSON_URL, status=503, json=envelope(503, "MAINTENANCE"))
    rsps.post(PERSON_URL, status=201, json=item("INV-1", PERSON))
    gateway.create_flag(PERSON, "key-1")
    assert exchanges == [
        ("POST", "/connect/token", 200),
        ("POST", PERSON_INVOLVEMENTS, None),
        ("POST", PERSON_INVOLVEMENTS, 503),
        ("POST", PERSON_INVOLVEMENTS, 201),
    ]
    assert retries == [(PERSON_INVOLVEMENTS, "CONNECTION_ERROR"), (PERSON_INVOLVEMENTS, "MAINTENANCE")]


def test_refused_credentials_and_tokens_are_reported_apart(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]
) -> None:
    """Telemetry hears `token` when the token request is refused and `api` for each 401 from the API."""
    refused: list[str] = []

    class Recording(NoTelemetry):
        def credentials_refused(self, request: str) -> None:
            refused.append(request)

    gateway = make_gateway(telemetry=Recording())
    add_token(rsps, "tok-1")
    rsps.get(LIST_URL, status=401, json=envelope(401, "TOKEN_EXPIRED"))
    add_token(rsps, "tok-2")
    rsps.get(LIST_URL, status=401, json=envelope(401, "TOKEN_INVALID"))
    with pytest.raises(FatalRemoteError):
        gateway.probe()
    rsps.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(FatalRemoteError):
        make_gateway(telemetry=Recording()).probe()
    assert refused == ["api", "api", "token"]


def test_retry_log_event_has_only_the_allowed_keys(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, log_buffer: io.StringIO
) -> None:
    """Each retry logs one http.retry_scheduled event: endpoint, status, code, attempt, delay and correlation id only."""
    add_token(rsps)
    rsps.delete(delete_url(), status=429, json=envelope(429, "RATE_LIMITED"), headers={"Retry-After": "2"})
    rsps.delete(delete_url(), status=204)
    gateway.remove_flag(Flag("INV-1", PERSON, 1))
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    assert events == [
        {
            "event": "http.retry_scheduled",
            "level": "warning",
            "endpoint": INVOLVEMENT,
            "status": 429,
            "code": "RATE_LIMITED",
            "attempt": 1,
            "delay_s": 2.0,
            "correlation_id": events[0]["correlation_id"],
        }
    ]
    assert re.fullmatch(r"[0-9a-f]{32}", events[0]["correlation_id"])


def test_giving_up_is_logged_once_with_the_attempts(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], log_buffer: io.StringIO
) -> None:
    """When the retry budget is spent, one http.gave_up event says where, why and after how many attempts."""
    gateway = make_gateway(retry_attempts=3)
    add_token(rsps)
    for _ in range(3):
        rsps.get(LIST_URL, status=503, json=envelope(503, "MAINTENANCE"))
    with pytest.raises(RetriableRemoteError):
        gateway.probe()
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    gave_up = [e for e in events if e["event"] == "http.gave_up"]
    assert len(gave_up) == 1
    assert (gave_up[0]["endpoint"], gave_up[0]["code"], gave_up[0]["attempts"]) == (INVOLVEMENTS, "MAINTENANCE", 3)
    assert [e["event"] for e in events].count("http.retry_scheduled") == 2


def test_requests_are_paced(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], sleeps: list[float]
) -> None:
    """With max_requests_per_second every request, the token one included, waits for its slot."""
    gateway = make_gateway(max_requests_per_second=4.0)
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": []})
    gateway.probe()
    gateway.probe()
    assert sleeps == [0.25, 0.5]


def test_pacer_spaces_slots_and_lets_idle_time_pass(clock: FakeClock) -> None:
    """The pacer hands out slots 1/rate apart and does not wait after an idle spell."""
    waits: list[float] = []
    pacer = Pacer(10.0, clock=clock, sleep=waits.append)
    pacer.wait()
    pacer.wait()
    clock.now += 5
    pacer.wait()
    assert waits == [pytest.approx(0.1)]


def test_pacer_is_shared_across_threads(clock: FakeClock) -> None:
    """Concurrent callers each get a distinct slot."""
    waits: list[float] = []
    lock = threading.Lock()

    def record(delay: float) -> None:
        with lock:
            waits.append(delay)

    pacer = Pacer(2.0, clock=clock, sleep=record)
    threads = [threading.Thread(target=pacer.wait) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [pytest.approx(0.5 * n) for n in range(1, 8)]


# --------------------------------------------------------------------------------------------
# Privacy


def test_canary_person_id_never_appears_in_errors_or_logs(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], log_buffer: io.StringIO
) -> None:
    """A person id never shows up in any exception message, chained exception or log line, whatever fails."""
    gateway = make_gateway(retry_attempts=2)
    url = f"{BASE}/api/v1/people/{CANARY}/involvements"
    leak = f"Max retries exceeded with url: /api/v1/people/{CANARY}/involvements"
    add_token(rsps, "tok-canary")
    rsps.post(url, body=requests.ConnectionError(leak))
    rsps.post(url, body=requests.ReadTimeout(leak))
    rsps.get(url, status=503, body=f"upstream failed for {CANARY}")
    rsps.get(url, status=404, json={"error": {"status": 404, "code": CANARY, "message": CANARY}})
    rsps.delete(delete_url(CANARY), status=500, json=envelope(500, "INTERNAL_ERROR"))
    rsps.post(url, status=409, json=envelope(409, "PERSON_MERGED"))

    errors: list[BaseException] = []
    for action in (
        lambda: gateway.create_flag(CANARY, "key-1"),
        lambda: gateway.person_flags(CANARY),
        lambda: gateway.remove_flag(Flag(CANARY, CANARY, 1)),
        lambda: gateway.create_flag(CANARY, "key-2"),
        lambda: gateway.create_flag(CANARY + "/x", "key-3"),
    ):
        with pytest.raises(RemoteError) as info:
            action()
        errors.append(info.value)

    for error in errors:
        chain = [error, error.__cause__, error.__context__ if not error.__suppress_context__ else None]
        text = " ".join(f"{e!s} {e!r} {e.args!r} {vars(e)!r}" for e in chain if e is not None)
        assert CANARY not in text
        assert "tok-canary" not in text
        assert SECRET not in text
    assert "http.retry_scheduled" in log_buffer.getvalue()
    assert CANARY not in log_buffer.getvalue()
    assert "tok-canary" not in log_buffer.getvalue()
    assert SECRET not in log_buffer.getvalue()


# --------------------------------------------------------------------------------------------
# classify and Retry-After


@pytest.mark.parametrize(
    ("status", "code", "kind", "issue"),
    [
        (200, None, None, None),
        (201, None, None, None),
        (204, None, None, None),
        (400, "MALFORMED_JSON", ContractViolation, None),
        (400, "INVALID_QUERY", ContractViolation, None),
        (400, "IDEMPOTENCY_KEY_REQUIRED", ContractViolation, None),
        (400, "INVALID_PAGE_TOKEN", FatalRemoteError, None),
        (401, "TOKEN_MISSING", FatalRemoteError, None),
        (401, "TOKEN_EXPIRED", FatalRemoteError, None),
        (401, "TOKEN_INVALID", FatalRemoteError, None),
        (403, "SCOPE_INSUFFICIENT", FatalRemoteError, None),
        (403, "SERVICE_TEAM_NOT_PERMITTED", PersonUnavailable, PersonIssue.NOT_PERMITTED),
        (403, "RECORD_RESTRICTED", PersonUnavailable, PersonIssue.RECORD_RESTRICTED),
        (404, "PERSON_NOT_FOUND", PersonUnavailable, PersonIssue.PERSON_NOT_FOUND),
        (404, "INVOLVEMENT_NOT_FOUND", FatalRemoteError, None),
        (409, "DUPLICATE_ACTIVE_INVOLVEMENT", FatalRemoteError, None),
        (409, "PERSON_MERGED", PersonUnavailable, PersonIssue.PERSON_MERGED),
        (410, "PERSON_ARCHIVED", PersonUnavailable, PersonIssue.PERSON_ARCHIVED),
        (410, None, PersonUnavailable, PersonIssue.PERSON_ARCHIVED),
        (412, "PRECONDITION_FAILED", FatalRemoteError, None),
        (428, "PRECONDITION_REQUIRED", FatalRemoteError, None),
        (415, "UNSUPPORTED_MEDIA_TYPE", ContractViolation, None),
        (422, "UNKNOWN_FIELD", ContractViolation, None),
        (422, "INVALID_INVOLVEMENT_TYPE", ContractViolation, None),
        (422, "IDEMPOTENCY_KEY_REUSED", ContractViolation, None),
        (429, "RATE_LIMITED", RetriableRemoteError, None),
        (500, "INTERNAL_ERROR", RetriableRemoteError, None),
        (502, "UPSTREAM_UNAVAILABLE", RetriableRemoteError, None),
        (503, "MAINTENANCE", RetriableRemoteError, None),
        (504, "GATEWAY_TIMEOUT", RetriableRemoteError, None),
        (302, None, FatalRemoteError, None),
    ],
)
def test_classify_maps_the_contract_table(
    status: int, code: str | None, kind: type[RemoteError] | None, issue: PersonIssue | None
) -> None:
    """Each status and code of one-api.md's table maps to the documented kind of error."""
    body = json.dumps(envelope(status, code)).encode() if code else b""
    error = classify(answer(status, body), endpoint=INVOLVEMENTS)
    if kind is None:
        assert error is None
        return
    assert type(error) is kind
    assert error.status == status
    assert error.endpoint == INVOLVEMENTS
    if issue is not None:
        assert isinstance(error, PersonUnavailable)
        assert error.issue is issue
    else:
        assert error.code == code


def test_classify_reads_retry_after_on_retriable_answers() -> None:
    """Retry-After, in seconds or as an HTTP date, is carried on the retriable error."""
    error = classify(answer(429, b"", {"Retry-After": "12"}), endpoint=INVOLVEMENTS)
    assert error is not None
    assert error.retry_after == 12.0
    future = format_datetime(datetime(2100, 1, 1, tzinfo=UTC), usegmt=True)
    error = classify(answer(503, b"", {"Retry-After": future}), endpoint=INVOLVEMENTS)
    assert error is not None
    assert error.retry_after is not None
    assert error.retry_after > 1e6


def test_classify_drops_codes_that_are_not_codes() -> None:
    """A free-text or lower-case code from the wire is not carried into the error: it becomes UNKNOWN_CODE."""
    error = classify(answer(422, json.dumps(envelope(422, "Bad value P-CANARY-123")).encode()), endpoint=INVOLVEMENTS)
    assert error is not None
    assert error.code == "UNKNOWN_CODE"
    assert CANARY not in str(error)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("Wed, 01 Jan 2031 00:00:10 GMT", 10.0),
        ("Wed, 01 Jan 2031 00:00:00 GMT", 0.0),
        ("Tue, 31 Dec 2030 23:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is read as seconds or an HTTP date (past dates mean now); anything else is ignored."""
    assert parse_retry_after(value, now=datetime(2031, 1, 1, tzinfo=UTC)) == expected


_BODIES = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda status, code: json.dumps(envelope(status, code)).encode(), st.integers(100, 599), st.text(max_size=20)),
    st.sampled_from([b"{}", b"[]", b'{"error": null}', b'{"error": {"code": 5}}', b"null"]),
)


@settings(max_examples=200, deadline=None)
@given(status=st.integers(100, 599), body=_BODIES, retry_after=st.one_of(st.none(), st.text(max_size=40)))
def test_classify_puts_every_status_in_exactly_one_category(status: int, body: bytes, retry_after: str | None) -> None:
    """For any status 100-599, body and Retry-After, classify never raises and picks one category by status."""
    headers = {} if retry_after is None else {"Retry-After": retry_after.encode("latin-1", "replace").decode("latin-1")}
    error = classify(answer(status, body, headers), endpoint=PERSON_INVOLVEMENTS)
    if 200 <= status < 300:
        assert error is None
    elif status == 429 or status >= 500:
        assert isinstance(error, RetriableRemoteError)
    else:
        assert isinstance(error, FatalRemoteError)
    if error is not None:
        assert error.status == status
        assert error.endpoint == PERSON_INVOLVEMENTS
        assert error.retry_after is None or error.retry_after >= 0
