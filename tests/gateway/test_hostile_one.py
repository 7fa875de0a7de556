"""A One that answers with hostile or broken content cannot push anything unknown, unbounded or endless into flagsync.

Regression tests for issue 6: error codes echoing person ids, huge and endless bodies, deeply nested
JSON, listings that go backwards or never end.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses
import structlog

from flagsync.adapters.one.classify import Answer, classify
from flagsync.adapters.one.gateway import HttpFlagGateway
from flagsync.adapters.one.transport import MAX_RESPONSE_BYTES
from flagsync.adapters.one.wire import CONTRACT_ERROR_CODES, INVOLVEMENTS, id_order
from flagsync.core.model import Flag
from flagsync.errors import FatalRemoteError, RemoteError, RetriableRemoteError
from flagsync.ports import NoTelemetry
from tests.gateway.test_gateway import (
    LIST_URL,
    PERSON_URL,
    SECRET,
    add_token,
    endpoint_with,
    envelope,
    item,
    page_query,
)

#: An upper-case person id, shaped exactly like an error code: the old code pattern let it through.
ECHOED_ID = "P0001234"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., HttpFlagGateway]]:
    made: list[HttpFlagGateway] = []

    def make(**overrides: Any) -> HttpFlagGateway:
        endpoint = endpoint_with(overrides)
        made.append(gateway := HttpFlagGateway(endpoint, **{"sleep": lambda _s: None, **overrides}))
        return gateway

    yield make
    for gateway in made:
        gateway.close()


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


# --------------------------------------------------------------------------------------------
# Error codes


@pytest.mark.parametrize("code", [ECHOED_ID, "A", "NOT_A_CONTRACT_CODE", "RATE_LIMITED ", "rate_limited", ""])
def test_only_contract_codes_survive_classification(code: str) -> None:
    """A code that is not one of the contract's becomes UNKNOWN_CODE, however code-like it looks."""
    error = classify(Answer(503, {}, json.dumps(envelope(503, code)).encode()), endpoint=INVOLVEMENTS)
    assert error is not None
    assert error.code == "UNKNOWN_CODE"
    assert ECHOED_ID not in str(error)


@pytest.mark.parametrize("code", sorted(CONTRACT_ERROR_CODES))
def test_contract_codes_are_kept(code: str) -> None:
    """Every code of the contract's table is carried as it is."""
    error = classify(Answer(500, {}, json.dumps(envelope(500, code)).encode()), endpoint=INVOLVEMENTS)
    assert error is not None
    assert error.code == code


def test_an_echoed_person_id_reaches_neither_the_retry_log_nor_the_retry_reason(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway], log_buffer: io.StringIO
) -> None:
    """A 503 whose code is a person id is logged and counted as UNKNOWN_CODE."""
    reasons: list[tuple[str, str]] = []

    class Recording(NoTelemetry):
        def retry_scheduled(self, endpoint: str, reason: str) -> None:
            reasons.append((endpoint, reason))

    gateway = make_gateway(retry_attempts=2, telemetry=Recording())
    add_token(rsps)
    rsps.post(PERSON_URL, status=503, json=envelope(503, ECHOED_ID))
    rsps.post(PERSON_URL, status=503, json=envelope(503, ECHOED_ID))
    with pytest.raises(RetriableRemoteError) as info:
        gateway.create_flag(ECHOED_ID, "key-1")
    assert info.value.code == "UNKNOWN_CODE"
    assert reasons == [("/api/v1/people/{personId}/involvements", "UNKNOWN_CODE")]
    assert "http.retry_scheduled" in log_buffer.getvalue()
    assert ECHOED_ID not in log_buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Bodies


def test_a_huge_error_body_is_refused_without_being_kept(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """An answer body over the cap fails the call as INVALID_RESPONSE, and is not retried."""
    add_token(rsps)
    rsps.get(LIST_URL, status=500, body=b"x" * (MAX_RESPONSE_BYTES + 1), match=[page_query()])
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "INVALID_RESPONSE"


def test_a_declared_huge_body_is_refused_before_reading(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A Content-Length over the cap is refused without reading the body."""
    add_token(rsps)
    rsps.get(LIST_URL, body=b"{}", headers={"Content-Length": str(100 * MAX_RESPONSE_BYTES)}, match=[page_query()])
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "INVALID_RESPONSE"


@pytest.mark.parametrize("status", [200, 503])
def test_deeply_nested_json_is_an_invalid_response(rsps: responses.RequestsMock, gateway: HttpFlagGateway, status: int) -> None:
    """JSON nested deeper than Python can parse is INVALID_RESPONSE (or a plain retriable status), never RecursionError."""
    add_token(rsps)
    nested = b"[" * 200_000 + b"]" * 200_000
    rsps.get(LIST_URL, status=status, body=nested, match=[page_query()])
    if status == 503:
        rsps.get(LIST_URL, status=status, body=nested, match=[page_query()])
    gateway_error: type[RemoteError] = FatalRemoteError if status == 200 else RetriableRemoteError
    with pytest.raises(gateway_error) as info:
        gateway.list_flags()
    assert info.value.code == ("INVALID_RESPONSE" if status == 200 else None)


@pytest.fixture
def gateway(make_gateway: Callable[..., HttpFlagGateway]) -> HttpFlagGateway:
    return make_gateway(retry_attempts=2)


class EndlessServer:
    """A loopback HTTP server that answers the token request, then streams a chunked body that never ends."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            request = conn.recv(65536)
            try:
                if request.startswith(b"POST /connect/token"):
                    body = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": 60}).encode()
                    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    conn.sendall(head % len(body) + body)
                    return
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"x" * 65536
                frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                while not self.stop.is_set():
                    conn.sendall(frame)
                    self.sent += len(chunk)
            except OSError:
                return  # the client hung up: what the test wants

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_an_endless_body_is_cut_off_at_the_cap() -> None:
    """A body that never ends costs at most about the cap: the call fails as INVALID_RESPONSE, promptly."""
    server = EndlessServer()
    base = f"http://127.0.0.1:{server.port}"
    gateway = HttpFlagGateway(
        endpoint_with({"base_url": base, "token_url": base + "/connect/token", "read_timeout": 5}),
        retry_attempts=1,
        sleep=lambda _s: None,
    )
    try:
        started = time.monotonic()
        with pytest.raises(FatalRemoteError) as info:
            gateway.list_flags()
        assert info.value.code == "INVALID_RESPONSE"
        assert time.monotonic() - started < 10
        time.sleep(0.2)
        assert server.sent < 32 * MAX_RESPONSE_BYTES  # socket buffers hold a few MB at most beyond what was read
    finally:
        gateway.close()
        server.close()


# --------------------------------------------------------------------------------------------
# Listings


def test_a_listing_whose_ids_go_backwards_fails_whole(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """Pages must continue after the last id: a page starting over (or overlapping) fails the listing."""
    add_token(rsps)
    first = {"items": [item("INV-000001", "P1"), item("INV-000002", "P2")], "nextPageToken": "t1"}
    rsps.get(LIST_URL, json=first, match=[page_query()])
    rsps.get(LIST_URL, json={"items": [item("INV-000002", "P2")], "nextPageToken": None}, match=[page_query("t1")])
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "INVALID_RESPONSE"


def test_ids_are_ordered_by_their_numbers() -> None:
    """INV-1000000 follows INV-999999 (a number that grew a digit is not going backwards)."""
    assert id_order("INV-999999") < id_order("INV-1000000")
    assert id_order("INV-000041") < id_order("INV-000042")


@pytest.mark.parametrize(
    ("odd_id", "kept"),
    [("INV-1\u00b2", ["P1", "P2", "P3"]), ("9" * 5000, ["P1", "P3"]), ("INV-\u0663" + "1" * 4400, ["P1", "P3"])],
)
def test_an_odd_involvement_id_in_a_listing_is_not_a_crash(
    rsps: responses.RequestsMock, gateway: HttpFlagGateway, odd_id: str, kept: list[str]
) -> None:
    """A superscript digit after a number is just text; a number too long for int() is a malformed (over-long) id."""
    add_token(rsps)
    items = [item("INV-000001", "P1"), item(odd_id, "P2"), item("INV-000003", "P3")]
    rsps.get(LIST_URL, json={"items": items}, match=[page_query()])
    assert sorted(flag.person_id for flag in gateway.list_flags()) == kept


def test_id_order_takes_only_the_matched_numbers_as_numbers() -> None:
    """The parts between the numbers stay text, whatever str.isdigit() thinks of them (a superscript two)."""
    assert id_order("INV-1\u00b2") == ((1, "INV-"), (0, 1), (1, "\u00b2"))
    assert id_order("12AB") == ((0, 12), (1, "AB"))
    assert id_order("INV-\u0663") == ((1, "INV-"), (0, 3))  # an Arabic-Indic three is a decimal digit


def test_the_only_printable_whitespace_is_the_space() -> None:
    """`is_valid_involvement_id` relies on this: isprintable() and no ' ' means no whitespace at all."""
    assert [c for c in range(0x110000) if chr(c).isspace() and chr(c).isprintable()] == [0x20]


def test_an_endless_stream_of_fresh_page_tokens_fails_at_the_page_cap(
    rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]
) -> None:
    """A One that always hands out a new page token gets LISTING_TOO_LONG after max_listing_pages pages."""
    gateway = make_gateway(max_listing_pages=5)
    add_token(rsps)
    for n in range(5):
        query = page_query(None if n == 0 else f"t{n}")
        rsps.get(LIST_URL, json={"items": [item(f"INV-{n:06d}", f"P{n}")], "nextPageToken": f"t{n + 1}"}, match=[query])
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "LISTING_TOO_LONG"


def test_a_listing_past_its_deadline_fails(rsps: responses.RequestsMock, make_gateway: Callable[..., HttpFlagGateway]) -> None:
    """A listing still going after the listing deadline fails with LISTING_TOO_LONG."""
    now = [0.0]

    def clock() -> float:
        now[0] += 10.0  # every look at the clock is ten seconds later
        return now[0]

    pages = [0]

    def next_page(request: Any) -> tuple[int, dict[str, str], str]:
        pages[0] += 1
        n = pages[0]
        return 200, {}, json.dumps({"items": [item(f"INV-{n:06d}", f"P{n}")], "nextPageToken": f"t{n}"})

    gateway = make_gateway(listing_deadline=100.0, clock=clock)
    add_token(rsps)
    rsps.add_callback(responses.GET, LIST_URL, callback=next_page)
    with pytest.raises(FatalRemoteError) as info:
        gateway.list_flags()
    assert info.value.code == "LISTING_TOO_LONG"
    assert 2 <= pages[0] <= 10  # stopped by the clock, long before the page cap


def test_the_gateway_holds_the_client_secret_as_a_secret(make_gateway: Callable[..., HttpFlagGateway]) -> None:
    """No dump of the gateway's attributes shows the client secret."""
    gateway = make_gateway()
    assert SECRET not in repr(vars(gateway))
    assert SECRET not in str(vars(gateway))


def test_flags_listed_are_returned(rsps: responses.RequestsMock, gateway: HttpFlagGateway) -> None:
    """A well-ordered listing over several pages is returned whole (the checks do not reject a good listing)."""
    add_token(rsps)
    rsps.get(LIST_URL, json={"items": [item("INV-000009", "P9")], "nextPageToken": "t1"}, match=[page_query()])
    rsps.get(LIST_URL, json={"items": [item("INV-000010", "P10")], "nextPageToken": None}, match=[page_query("t1")])
    assert gateway.list_flags() == [Flag("INV-000009", "P9", 1), Flag("INV-000010", "P10", 1)]
