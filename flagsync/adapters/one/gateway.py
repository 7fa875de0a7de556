"""`HttpFlagGateway`: the `FlagGateway` over One's HTTP interface: the calls, the listing, retries and tokens.

One request is one `_exchange`: paced, sent by the `transport` (a prepared request, no Session, a
bounded answer), timed for telemetry. One logical call is one `_call`: retried by tenacity on
retriable failures only, within attempts and a deadline, with a fresh token once after a 401.
Answers are classified in `classify`; the wire contract (paths, the one create body, ids) is `wire`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import structlog
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay

from flagsync.adapters.one import wire
from flagsync.adapters.one.classify import (
    Answer,
    classify,
    classify_token_answer,
    invalid_response,
    parse_retry_after,
)
from flagsync.adapters.one.endpoint import OneEndpoint
from flagsync.adapters.one.pacer import Pacer
from flagsync.adapters.one.tokens import TokenCache
from flagsync.adapters.one.transport import Request, Transport
from flagsync.core.model import Flag
from flagsync.errors import FatalRemoteError, RemoteError, RetriableRemoteError, RunInterrupted
from flagsync.ports import CreateOutcome, PageProbe, Telemetry

log = structlog.get_logger("flagsync.one")

#: A full listing fails (removing nothing) after this many pages or this many seconds: a One that keeps
#: handing out fresh page tokens must not hold the run, and so the single-run lock, forever.
MAX_LISTING_PAGES: Final = 10_000
LISTING_DEADLINE_SECONDS: Final = 900.0

_DEFAULT_TOKEN_LIFETIME: Final = 300.0  # seconds, when One's token answer carries no usable expires_in


class HttpFlagGateway:
    """Creates, lists and removes our flags in One over HTTPS with OAuth2 client credentials.

    `endpoint` is trusted as the settings resolved it. Thread-safe: several writers share the
    token, the pacer and the connection pool; at most `max_concurrency` writes are in flight.
    """

    def __init__(
        self,
        endpoint: OneEndpoint,
        *,
        max_concurrency: int = 8,
        max_requests_per_second: float = 0.0,
        page_size: int = 100,
        retry_attempts: int = 5,
        retry_max_delay: float = 300.0,
        retry_deadline: float = 600.0,
        listing_restarts: int = 3,
        precondition_retries: int = 3,
        max_listing_pages: int = MAX_LISTING_PAGES,
        listing_deadline: float = LISTING_DEADLINE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        telemetry: Telemetry | None = None,
        adapter: HTTPAdapter | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._token_endpoint = urlsplit(endpoint.token_url).path or "/"
        self._page_size = page_size
        self._retry_max_delay = retry_max_delay
        self._listing_restarts = listing_restarts
        self._precondition_retries = precondition_retries
        self._max_listing_pages = max_listing_pages
        self._listing_deadline = listing_deadline
        self._clock = clock
        self._telemetry = telemetry
        self._writes = threading.BoundedSemaphore(max_concurrency)
        self._pacer = Pacer(max_requests_per_second, clock=clock, sleep=sleep)
        self._tokens = TokenCache(self._fetch_token, clock=clock)
        self._transport = Transport(endpoint, pool_size=max_concurrency + 2, adapter=adapter)
        # One Retrying for every call and thread: tenacity keeps each call's state in thread-local storage.
        self._retrying = Retrying(
            stop=stop_after_attempt(retry_attempts) | stop_before_delay(retry_deadline),
            wait=self._wait,
            retry=retry_if_exception_type(RetriableRemoteError),
            sleep=sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    # ---- the FlagGateway protocol

    def list_flags(self, *, cancel: threading.Event | None = None) -> list[Flag]:
        """Every active flag of ours, complete; an expired page token restarts the listing (a bounded number of times)."""
        for restart in range(self._listing_restarts + 1):
            try:
                return self._list_all(cancel)
            except FatalRemoteError as exc:
                if exc.code != wire.INVALID_PAGE_TOKEN:
                    raise
                log.warning("one.listing_restarted", endpoint=wire.INVOLVEMENTS, attempt=restart + 1)
        raise FatalRemoteError(
            f"One's listing on {wire.INVOLVEMENTS} kept expiring its page tokens",
            status=400,
            code=wire.INVALID_PAGE_TOKEN,
            endpoint=wire.INVOLVEMENTS,
        )

    def person_flags(self, person_id: str) -> list[Flag]:
        path = wire.person_path(person_id) + "?" + urlencode({"status": "active"})
        answer = self._call(self._request("GET", wire.PERSON_INVOLVEMENTS, path))
        flags = self._flags_in(
            _items(_json_object(answer, wire.PERSON_INVOLVEMENTS), wire.PERSON_INVOLVEMENTS), wire.PERSON_INVOLVEMENTS
        )
        return sorted(flag for flag in flags if flag.person_id == person_id)

    def create_flag(self, person_id: str, idempotency_key: str) -> CreateOutcome:
        path = wire.person_path(person_id)
        wire.check_idempotency_key(idempotency_key)
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        request = self._request(
            "POST", wire.PERSON_INVOLVEMENTS, path, headers=headers, body=wire.CREATE_BODY, key=idempotency_key
        )
        with self._writes:
            try:
                self._call(request)
            except FatalRemoteError as exc:
                if exc.status == 409 and exc.code == wire.DUPLICATE_ACTIVE_INVOLVEMENT:
                    return CreateOutcome.ALREADY_PRESENT
                raise
        return CreateOutcome.CREATED

    def remove_flag(self, flag: Flag) -> None:
        path = wire.involvement_path(flag.involvement_id)
        version = flag.version
        with self._writes:
            for _ in range(self._precondition_retries + 1):
                try:
                    self._call(self._request("DELETE", wire.INVOLVEMENT, path, headers={"If-Match": f'W/"{version}"'}))
                    return
                except FatalRemoteError as exc:
                    if _is_gone(exc):
                        return
                    if exc.status not in (412, 428):
                        raise
                current = self._current_version(path)
                if current is None:
                    return
                version = current
        raise FatalRemoteError(
            f"The flag kept changing while DELETE {wire.INVOLVEMENT} was tried",
            status=412,
            code=wire.PRECONDITION_FAILED,
            endpoint=wire.INVOLVEMENT,
        )

    def probe(self) -> PageProbe:
        """Fetch a token and list the first page (of one item): what it held, and whether more pages follow."""
        items, next_token = self._page(1, None)
        return PageProbe(items=len(items), more=next_token is not None)

    def close(self) -> None:
        """Close the pooled connections."""
        self._transport.close()

    # ---- calls

    def _list_all(self, cancel: threading.Event | None) -> list[Flag]:
        """One complete pass over the listing, checked as it goes: ids keep increasing, pages and time are bounded."""
        flags: list[Flag] = []
        seen_tokens: set[str] = set()
        page_token: str | None = None
        last_id: tuple[tuple[int, int | str], ...] | None = None
        deadline = self._clock() + self._listing_deadline
        for _ in range(self._max_listing_pages):
            if cancel is not None and cancel.is_set():
                raise RunInterrupted(f"the listing on {wire.INVOLVEMENTS} was cancelled")
            items, page_token = self._page(self._page_size, page_token)
            for item in items:
                involvement_id = item.get("id") if isinstance(item, dict) else None
                if wire.is_valid_involvement_id(involvement_id):  # a malformed id is dropped below, unordered
                    # The contract orders the listing by id, across pages: an id that does not follow the
                    # last one means pages overlap, repeat or come out of order, so the view is not trustworthy.
                    key = wire.id_order(involvement_id)
                    if last_id is not None and key <= last_id:
                        raise invalid_response(wire.INVOLVEMENTS)
                    last_id = key
            flags.extend(self._flags_in(items, wire.INVOLVEMENTS))
            if page_token is None:
                return sorted(flags)
            if page_token in seen_tokens:
                raise invalid_response(wire.INVOLVEMENTS)  # the listing went round in a circle
            seen_tokens.add(page_token)
            if self._clock() > deadline:
                break
        raise FatalRemoteError(
            f"One's listing on {wire.INVOLVEMENTS} did not end within {self._max_listing_pages} pages"
            f" or {self._listing_deadline:.0f} s",
            code="LISTING_TOO_LONG",
            endpoint=wire.INVOLVEMENTS,
        )

    def _page(self, size: int, page_token: str | None) -> tuple[list[Any], str | None]:
        params = {"status": "active", "pageSize": str(size)}
        if page_token is not None:
            params["pageToken"] = page_token
        answer = self._call(self._request("GET", wire.INVOLVEMENTS, wire.INVOLVEMENTS + "?" + urlencode(params)))
        payload = _json_object(answer, wire.INVOLVEMENTS)
        next_token = payload.get("nextPageToken")
        if not (next_token is None or isinstance(next_token, str)):
            raise invalid_response(wire.INVOLVEMENTS)
        return _items(payload, wire.INVOLVEMENTS), next_token or None

    def _current_version(self, path: str) -> int | None:
        """The version One holds now, or None when the flag is gone (or no longer active)."""
        try:
            answer = self._call(self._request("GET", wire.INVOLVEMENT, path))
        except FatalRemoteError as exc:
            if _is_gone(exc):
                return None
            raise
        payload = _json_object(answer, wire.INVOLVEMENT)
        if not wire.is_ours({**payload, "status": "active"}):
            raise FatalRemoteError(
                f"Refused to remove an involvement that is not ours on {wire.INVOLVEMENT}",
                code="NOT_OURS",
                endpoint=wire.INVOLVEMENT,
            )
        if payload.get("status", "active") != "active":
            return None
        version = wire.etag_version(answer.headers.get("ETag"))
        if version is None:
            version = payload.get("version")
        if type(version) is not int:
            raise invalid_response(wire.INVOLVEMENT)
        return version

    def _flags_in(self, items: list[Any], endpoint: str) -> list[Flag]:
        flags: list[Flag] = []
        ignored = malformed = 0
        for item in items:
            if not isinstance(item, dict) or not wire.is_ours(item):
                ignored += 1
                continue
            flag = wire.flag_from(item)
            if flag is None:
                malformed += 1
            else:
                flags.append(flag)
        for reason, count in (("not_ours_or_inactive", ignored), ("malformed", malformed)):
            if count:
                log.warning("one.items_skipped", endpoint=endpoint, reason=reason, count=count)
        return flags

    def _request(
        self,
        method: str,
        endpoint: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        key: str | None = None,
    ) -> Request:
        return Request(method, endpoint, self._endpoint.base_url + path, headers or {}, body, idempotency_key=key)

    def _call(self, request: Request) -> Answer:
        """One logical call: retried on retriable errors only, within attempts and a deadline; 2xx or an exception."""
        try:
            answer: Answer = self._retrying(self._attempt, request)
        except RetriableRemoteError as exc:
            log.warning(
                "http.gave_up",
                endpoint=exc.endpoint or request.endpoint,
                status=exc.status,
                code=exc.code,
                attempts=self._retrying.statistics.get("attempt_number"),
                correlation_id=request.correlation_id,
            )
            raise
        return answer

    def _attempt(self, request: Request) -> Answer:
        token = self._tokens.current()
        answer = self._exchange(request, token)
        if answer.status == 401:  # expired or revoked: one new token, one more try, then fatal
            self._note_refusal("api")
            token = self._tokens.replace(token)
            answer = self._exchange(request, token)
            if answer.status == 401:
                self._note_refusal("api")
        error = classify(answer, endpoint=request.endpoint)
        if error is not None:
            raise error
        return answer

    def _fetch_token(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._endpoint.client_id,
            "client_secret": self._endpoint.client_secret.get_secret_value(),
            "scope": wire.SCOPE,
        }
        request = Request(
            "POST",
            self._token_endpoint,
            self._endpoint.token_url,
            {"Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form),
        )
        answer = self._exchange(request, None)
        error = classify_token_answer(answer, endpoint=self._token_endpoint)
        if error is not None:
            if error.code == "CREDENTIALS_REJECTED":
                self._note_refusal("token")
            raise error
        payload = _json_object(answer, self._token_endpoint)
        token, token_type, expires_in = (
            payload.get("access_token"),
            payload.get("token_type", "Bearer"),
            payload.get("expires_in"),
        )
        if not isinstance(token, str) or not token or not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise invalid_response(self._token_endpoint)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            return token, float(expires_in)
        return token, _DEFAULT_TOKEN_LIFETIME

    def _exchange(self, request: Request, token: str | None) -> Answer:
        """One request and its answer, paced, timed for telemetry, and noted by the pacer (a 429 holds every writer)."""
        self._pacer.wait()
        started = time.perf_counter()
        status: int | None = None
        try:
            answer: Answer = self._transport.send(request, token)
            status = answer.status
        finally:
            if self._telemetry is not None:
                self._telemetry.request_done(request.method, request.endpoint, status, time.perf_counter() - started)
        rate_limited = answer.status == 429
        retry_after = parse_retry_after(answer.headers.get("Retry-After")) if rate_limited else None
        self._pacer.answered(rate_limited, None if retry_after is None else min(retry_after, self._retry_max_delay))
        return answer

    def _note_refusal(self, request: str) -> None:
        if self._telemetry is not None:
            self._telemetry.credentials_refused(request)

    # ---- retry policy

    def _wait(self, state: RetryCallState) -> float:
        """The larger of jittered exponential backoff and One's Retry-After (capped at retry_max_delay)."""
        hint = 0.0
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RemoteError) and exc.retry_after is not None:
            hint = min(exc.retry_after, self._retry_max_delay)
        return max(self._backoff(state.attempt_number), hint)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff from 0.5 s with up to 0.5 s of jitter, never above retry_max_delay."""
        return min(self._retry_max_delay, 0.5 * 2.0 ** min(attempt - 1, 32) + random.uniform(0, 0.5))

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(exc, RemoteError):
            return
        request = state.args[0] if state.args and isinstance(state.args[0], Request) else None
        endpoint = exc.endpoint or "?"
        ids: dict[str, str] = {}
        if request is not None:
            ids["correlation_id"] = request.correlation_id  # random per call: ties this line to One's journal, names nobody
            if request.idempotency_key is not None:
                ids["idempotency_key"] = request.idempotency_key  # random per create, the same on every retry of it
        log.warning(
            "http.retry_scheduled",
            endpoint=endpoint,
            status=exc.status,
            code=exc.code,
            attempt=state.attempt_number,
            delay_s=round(state.upcoming_sleep, 3),
            **ids,
        )
        if self._telemetry is not None:
            self._telemetry.retry_scheduled(endpoint, exc.code or f"HTTP_{exc.status}")


# ---- the transport's small pieces


def _is_gone(exc: RemoteError) -> bool:
    return exc.status == 404 and exc.code == wire.INVOLVEMENT_NOT_FOUND


def _json_object(answer: Answer, endpoint: str) -> dict[str, Any]:
    payload = answer.json()  # an HTML error page from a proxy, a truncated body, ...: not an object
    if not isinstance(payload, dict):
        raise invalid_response(endpoint)
    return payload


def _items(payload: Mapping[str, Any], endpoint: str) -> list[Any]:
    items = payload.get("items")
    if not isinstance(items, list):
        raise invalid_response(endpoint)
    return items
