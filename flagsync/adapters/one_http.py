"""The `FlagGateway` over One's HTTP interface (requests + tenacity), to the wire contract in one-api.md."""

from __future__ import annotations

import email.utils
import ipaddress
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeGuard
from urllib.parse import quote, urlsplit

import requests
import structlog
from pydantic import BaseModel, ConfigDict, SecretStr
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)
from urllib3.util.retry import Retry

from flagsync.core.model import INVOLVEMENT_TYPE, SERVICE_TEAM, Flag, is_valid_person_id
from flagsync.errors import (
    ConfigError,
    ContractViolation,
    FatalRemoteError,
    PersonIssue,
    PersonUnavailable,
    RemoteError,
    RetriableRemoteError,
)
from flagsync.ports import CreateOutcome

#: Endpoint templates: the only form in which a URL appears in errors, logs and metrics.
PERSON_INVOLVEMENTS = "/api/v1/people/{personId}/involvements"
INVOLVEMENTS = "/api/v1/involvements"
INVOLVEMENT = "/api/v1/involvements/{id}"

#: The one create body flagsync may ever send.
ALLOWED_CREATE_BODY: Mapping[str, str] = {"involvementType": INVOLVEMENT_TYPE}

SCOPE = "involvements.read involvements.write"
DUPLICATE_ACTIVE_INVOLVEMENT = "DUPLICATE_ACTIVE_INVOLVEMENT"
INVOLVEMENT_NOT_FOUND = "INVOLVEMENT_NOT_FOUND"
INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"  # noqa: S105 - an error code, not a secret

#: Every error code of the wire contract's table. A code One sends that is not one of these is never
#: carried anywhere (a One that echoes a person id as its "code" would undo the pseudonyms): it becomes
#: UNKNOWN_CODE, so logs, the audit trail and metric labels only ever hold these words.
CONTRACT_ERROR_CODES: frozenset[str] = frozenset(
    {
        "MALFORMED_JSON",
        "INVALID_QUERY",
        "INVALID_PAGE_TOKEN",
        "IDEMPOTENCY_KEY_REQUIRED",
        "TOKEN_MISSING",
        "TOKEN_EXPIRED",
        "TOKEN_INVALID",
        "SCOPE_INSUFFICIENT",
        "SERVICE_TEAM_NOT_PERMITTED",
        "RECORD_RESTRICTED",
        "PERSON_NOT_FOUND",
        "INVOLVEMENT_NOT_FOUND",
        "DUPLICATE_ACTIVE_INVOLVEMENT",
        "PERSON_MERGED",
        "PERSON_ARCHIVED",
        "PRECONDITION_FAILED",
        "PRECONDITION_REQUIRED",
        "UNSUPPORTED_MEDIA_TYPE",
        "UNKNOWN_FIELD",
        "INVALID_INVOLVEMENT_TYPE",
        "IDEMPOTENCY_KEY_REUSED",
        "RATE_LIMITED",
        "INTERNAL_ERROR",
        "UPSTREAM_UNAVAILABLE",
        "MAINTENANCE",
        "GATEWAY_TIMEOUT",
    }
)
UNKNOWN_CODE = "UNKNOWN_CODE"

#: The largest answer body read from One (a listing page of 100 flags is about 25 KB). Anything larger
#: fails the call as INVALID_RESPONSE without being read further.
MAX_RESPONSE_BYTES = 1024 * 1024

#: A full listing fails (removing nothing) after this many pages or this many seconds: a One that keeps
#: handing out fresh page tokens must not hold the run, and so the single-run lock, forever.
MAX_LISTING_PAGES = 10_000
LISTING_DEADLINE_SECONDS = 900.0

_DIGITS = re.compile(r"(\d+)")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,64}")
_RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")
_ETAG_VERSION = re.compile(r'(?:W/)?"([0-9]{1,18})"')
_MAX_INVOLVEMENT_ID_LENGTH = 128
_DEFAULT_TOKEN_LIFETIME = 300.0  # seconds, when One's token answer carries no usable expires_in
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})

_PERSON_ISSUES: Mapping[tuple[int, str | None], PersonIssue] = {
    (403, "RECORD_RESTRICTED"): PersonIssue.RECORD_RESTRICTED,
    (403, "SERVICE_TEAM_NOT_PERMITTED"): PersonIssue.NOT_PERMITTED,
    (404, "PERSON_NOT_FOUND"): PersonIssue.PERSON_NOT_FOUND,
    (409, "PERSON_MERGED"): PersonIssue.PERSON_MERGED,
}

OnRequest = Callable[[str, str, int | None, float], None]
OnRetry = Callable[[str, str], None]


class CreateFlagBody(BaseModel):
    """The create request body: exactly one field, fixed, and nothing else can be added."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    involvementType: Literal["PIAS_WORKING_WITH_FAMILY"] = "PIAS_WORKING_WITH_FAMILY"


def guard_create_body(body: object) -> bytes:
    """Serialise a create body, refusing anything that is not exactly the allowed flag."""
    if type(body) is not dict or body != ALLOWED_CREATE_BODY:
        raise ContractViolation("Refused to send a create body other than the bare flag", code="BODY_NOT_ALLOWED")
    return json.dumps(body, separators=(",", ":")).encode("ascii")


# --------------------------------------------------------------------------------------------
# Classifying answers: the one place where a status and code become an exception


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


@dataclass(frozen=True, slots=True)
class Answer:
    """One's answer to one request: the status, the headers and a body read up to `MAX_RESPONSE_BYTES`."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        """The body as JSON, or `_NOT_JSON` when it is not decodable JSON (deep nesting and huge numbers included)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and over-long integers
            return _NOT_JSON


_NOT_JSON = object()


def error_code(answer: Answer) -> str | None:
    """The `error.code` of One's error envelope: a contract code, `UNKNOWN_CODE` for anything else, None if absent."""
    payload = answer.json()
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if code is None:
        return None
    return code if isinstance(code, str) and code in CONTRACT_ERROR_CODES else UNKNOWN_CODE


def classify(answer: Answer, *, endpoint: str) -> RemoteError | None:
    """Map an answer from One to None (2xx) or the exception that says what the caller should do.

    `endpoint` is the URL template. Codes the callers act on (duplicate, gone, stale version, expired
    page token, 401) come back as plain `FatalRemoteError`s carrying `status` and `code`.
    """
    status = answer.status
    if 200 <= status < 300:
        return None
    code = error_code(answer)
    return remote_error(status, code, endpoint=endpoint, retry_after=parse_retry_after(answer.headers.get("Retry-After")))


def remote_error(status: int, code: str | None, *, endpoint: str, retry_after: float | None = None) -> RemoteError:
    """The exception for a non-2xx status and (sanitised) error code; see the table in one-api.md."""
    message = f"One answered HTTP {status}{f' {code}' if code else ''} on {endpoint}"
    if status == 429 or 500 <= status < 600:
        return RetriableRemoteError(message, status=status, code=code, endpoint=endpoint, retry_after=retry_after)
    issue = PersonIssue.PERSON_ARCHIVED if status == 410 else _PERSON_ISSUES.get((status, code))
    if issue is not None:
        return PersonUnavailable(issue, status=status, endpoint=endpoint)
    if status in (415, 422) or (status == 400 and code != INVALID_PAGE_TOKEN):
        return ContractViolation(message, status=status, code=code, endpoint=endpoint)
    return FatalRemoteError(message, status=status, code=code, endpoint=endpoint)


def translate_exception(exc: requests.RequestException, *, method: str, endpoint: str) -> RemoteError:
    """Turn a requests exception into a RemoteError that names only the endpoint template and the type."""
    kind = type(exc).__name__
    if isinstance(exc, requests.Timeout):
        return RetriableRemoteError(
            f"No answer from One in time on {method} {endpoint} ({kind})", code="TIMEOUT", endpoint=endpoint
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return RetriableRemoteError(f"TLS failed with One on {method} {endpoint} ({kind})", code="TLS_ERROR", endpoint=endpoint)
    if isinstance(
        exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        return RetriableRemoteError(
            f"Connection to One failed on {method} {endpoint} ({kind})", code="CONNECTION_ERROR", endpoint=endpoint
        )
    return FatalRemoteError(f"Could not send {method} {endpoint} to One ({kind})", code="REQUEST_ERROR", endpoint=endpoint)


def _invalid_response(endpoint: str) -> FatalRemoteError:
    return FatalRemoteError(
        f"One's answer on {endpoint} is not what the contract describes", code="INVALID_RESPONSE", endpoint=endpoint
    )


def _json_object(answer: Answer, endpoint: str) -> dict[str, Any]:
    payload = answer.json()  # an HTML error page from a proxy, a truncated body, ...: not an object
    if not isinstance(payload, dict):
        raise _invalid_response(endpoint)
    return payload


def _items(payload: Mapping[str, Any], endpoint: str) -> list[Any]:
    items = payload.get("items")
    if not isinstance(items, list):
        raise _invalid_response(endpoint)
    return items


# --------------------------------------------------------------------------------------------
# Small helpers: URL policy, pacing, the token cache


def _check_url(url: str, *, setting: str, allow_insecure_http: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{setting} must be an absolute https URL")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigError(f"{setting} must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not (allow_insecure_http or _is_loopback(parts.hostname)):
        raise ConfigError(f"{setting} must use https (plain http only to loopback, or with one.allow_insecure_http)")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, not an address
        return False


class _Pacer:
    """Spaces request starts at least 1/rate seconds apart across all threads (0: no pacing), and backs off together on 429.

    When One answers 429, every thread holds its next request until the Retry-After moment (the
    thread that got the 429 waits it out in its own retry), so eight writers do not each run into
    the limit again. When two rate-limit episodes come within `learn_window` seconds with at least
    `min_sample` answers between them, the pacer also paces at the rate One sustained between the two
    (answers that were not 429, over the time between the episodes' first 429s; a token bucket's
    refill rate), never faster than the configured rate. It learns only while not already pacing at a
    learned rate (so stray 429s cannot ratchet it down) and forgets the rate `relax_after` seconds
    after learning it, to find out afresh. A 429 arriving while a hold is still ahead is one of the
    same burst and starts no new episode.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        learn_window: float = 30.0,
        relax_after: float = 30.0,
        min_sample: int = 20,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._learn_window = learn_window
        self._relax_after = relax_after
        self._min_sample = min_sample
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._hold_until = 0.0
        self._learned_interval = 0.0
        self._learned_at = 0.0
        self._episode_at: float | None = None
        self._answered = 0  # answers other than 429 since the current episode began
        self._waited = threading.local()  # the hold this thread already waited out in its own retry

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if self._learned_interval and now - self._learned_at > self._relax_after:
                self._learned_interval = 0.0
            start = now
            if self._hold_until > now and getattr(self._waited, "until", 0.0) < self._hold_until:
                start = self._hold_until
            interval = max(self._interval, self._learned_interval)
            if interval:
                start = max(start, self._next_slot)
                self._next_slot = start + interval
        if start > now:
            self._sleep(start - now)

    def answered(self, rate_limited: bool, retry_after: float | None) -> None:
        """Note an answer from One; on a 429, hold every thread until `retry_after` seconds from now and learn One's rate."""
        with self._lock:
            if not rate_limited:
                self._answered += 1
                return
            now = self._clock()
            if retry_after is not None:
                self._waited.until = now + retry_after  # this thread's retry sleeps at least that long
            if now < self._hold_until:
                return  # one of the burst that met the limit together
            if retry_after is not None:
                self._hold_until = now + retry_after
            learn = not self._learned_interval and self._answered >= self._min_sample
            if learn and self._episode_at is not None and 0 < now - self._episode_at <= self._learn_window:
                self._learned_interval = max(self._interval, (now - self._episode_at) / self._answered)
                self._learned_at = now
            self._episode_at = now
            self._answered = 0


class _TokenCache:
    """Holds the access token until shortly before it expires; one fetch at a time."""

    def __init__(self, fetch: Callable[[], tuple[str, float]], *, clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def current(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                return self._renew()
            return self._token

    def replace(self, rejected: str) -> str:
        """A fresh token after One rejected `rejected` (unless another thread already renewed it)."""
        with self._lock:
            if self._token is None or self._token == rejected:
                return self._renew()
            return self._token

    def _renew(self) -> str:
        self._token = None
        token, lifetime = self._fetch()
        self._token = token
        self._renew_at = self._clock() + lifetime - min(60.0, lifetime / 2)
        return token


class _Auth(requests.auth.AuthBase):
    """Sets the bearer token (or nothing); passing an auth object also keeps ~/.netrc from replacing it."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request


# --------------------------------------------------------------------------------------------
# The gateway


class HttpFlagGateway:
    """Creates, lists and removes our flags in One over HTTPS with OAuth2 client credentials."""

    def __init__(
        self,
        *,
        base_url: str,
        token_url: str | None,
        client_id: str,
        client_secret: SecretStr | str,
        ca_bundle: Path | None = None,
        proxy: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 30.0,
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
        allow_insecure_http: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_request: OnRequest | None = None,
        on_retry: OnRetry | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._base_url = _check_url(base_url, setting="one.base_url", allow_insecure_http=allow_insecure_http)
        self._token_url = _check_url(
            token_url or f"{self._base_url}/connect/token", setting="one.token_url", allow_insecure_http=allow_insecure_http
        )
        secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        if not client_id or not secret.get_secret_value():
            raise ConfigError("one.client_id and one.client_secret are required")
        proxy_url = None if proxy is None else _check_url(proxy, setting="one.proxy", allow_insecure_http=allow_insecure_http)
        if ca_bundle is not None and not ca_bundle.is_file():
            raise ConfigError("one.ca_bundle must name a readable CA bundle file")
        if connect_timeout <= 0 or read_timeout <= 0 or max_concurrency < 1 or not 1 <= page_size <= 100 or retry_attempts < 1:
            raise ConfigError("one.* timeouts, max_concurrency, page_size or sync.retry_attempts are out of range")
        self._client_id = client_id
        self._client_secret = secret  # a SecretStr: its repr, and so any dump of this object, shows ***
        self._token_endpoint = urlsplit(self._token_url).path or "/"
        self._verify: str | bool = str(ca_bundle) if ca_bundle is not None else True
        self._timeout = (connect_timeout, read_timeout)
        self._page_size = page_size
        self._retry_attempts = retry_attempts
        self._retry_max_delay = retry_max_delay
        self._retry_deadline = retry_deadline
        self._listing_restarts = listing_restarts
        self._precondition_retries = precondition_retries
        self._max_listing_pages = max_listing_pages
        self._listing_deadline = listing_deadline
        self._clock = clock
        self._sleep = sleep
        self._on_request = on_request
        self._on_retry = on_retry
        self._writes = threading.BoundedSemaphore(max_concurrency)
        self._pacer = _Pacer(max_requests_per_second, clock=clock, sleep=sleep)
        self._tokens = _TokenCache(self._fetch_token, clock=clock)
        self._owns_session = session is None
        self._session = session or requests.Session()
        # The environment must not redirect traffic: HTTP(S)_PROXY would receive the client secret and
        # tokens (in clear for http targets), REQUESTS_CA_BUNDLE would swap the trust store, ~/.netrc would
        # add credentials. Only the explicit one.proxy and one.ca_bundle settings count.
        self._session.trust_env = False
        self._session.proxies = {} if proxy_url is None else {"http": proxy_url, "https": proxy_url}
        # Retries happen in exactly one place (tenacity, below): urllib3's own are switched off.
        adapter = HTTPAdapter(
            pool_connections=2,
            pool_maxsize=max_concurrency + 2,
            max_retries=Retry(total=0, read=False, redirect=False, raise_on_redirect=False, raise_on_status=False),
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    # ---- the FlagGateway protocol

    def list_flags(self) -> list[Flag]:
        """Every active flag of ours, complete; an expired page token restarts the listing (a bounded number of times)."""
        for restart in range(self._listing_restarts + 1):
            try:
                return self._list_all()
            except FatalRemoteError as exc:
                if exc.code != INVALID_PAGE_TOKEN:
                    raise
                structlog.get_logger(__name__).warning("one.listing_restarted", endpoint=INVOLVEMENTS, attempt=restart + 1)
        raise FatalRemoteError(
            f"One's listing on {INVOLVEMENTS} kept expiring its page tokens",
            status=400,
            code=INVALID_PAGE_TOKEN,
            endpoint=INVOLVEMENTS,
        )

    def person_flags(self, person_id: str) -> list[Flag]:
        url = self._person_url(person_id)
        answer = self._call("GET", PERSON_INVOLVEMENTS, url, params={"status": "active"})
        flags = self._flags_in(_items(_json_object(answer, PERSON_INVOLVEMENTS), PERSON_INVOLVEMENTS), PERSON_INVOLVEMENTS)
        return sorted(flag for flag in flags if flag.person_id == person_id)

    def create_flag(self, person_id: str, idempotency_key: str) -> CreateOutcome:
        url = self._person_url(person_id)
        if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ContractViolation(
                "Refused to send an Idempotency-Key that is not 1-64 visible ASCII characters", code="BAD_IDEMPOTENCY_KEY"
            )
        body = guard_create_body(CreateFlagBody().model_dump(mode="json"))
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        with self._writes:
            try:
                self._call("POST", PERSON_INVOLVEMENTS, url, headers=headers, data=body)
            except FatalRemoteError as exc:
                if exc.status == 409 and exc.code == DUPLICATE_ACTIVE_INVOLVEMENT:
                    return CreateOutcome.ALREADY_PRESENT
                raise
        return CreateOutcome.CREATED

    def remove_flag(self, flag: Flag) -> None:
        url = self._involvement_url(flag.involvement_id)
        version = flag.version
        with self._writes:
            for _ in range(self._precondition_retries + 1):
                try:
                    self._call("DELETE", INVOLVEMENT, url, headers={"If-Match": f'W/"{version}"'})
                    return
                except FatalRemoteError as exc:
                    if _is_gone(exc):
                        return
                    if exc.status not in (412, 428):
                        raise
                current = self._current_version(url)
                if current is None:
                    return
                version = current
        raise FatalRemoteError(
            f"The flag kept changing while DELETE {INVOLVEMENT} was tried",
            status=412,
            code="PRECONDITION_FAILED",
            endpoint=INVOLVEMENT,
        )

    def probe(self) -> int:
        items, _ = self._page(1, None)
        return len(items)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # ---- calls

    def _list_all(self) -> list[Flag]:
        """One complete pass over the listing, checked as it goes: ids keep increasing, pages and time are bounded."""
        flags: list[Flag] = []
        seen_tokens: set[str] = set()
        page_token: str | None = None
        last_id: tuple[tuple[int, int | str], ...] | None = None
        deadline = self._clock() + self._listing_deadline
        for _ in range(self._max_listing_pages):
            items, page_token = self._page(self._page_size, page_token)
            for item in items:
                involvement_id = item.get("id") if isinstance(item, dict) else None
                if isinstance(involvement_id, str):
                    # The contract orders the listing by id, across pages: an id that does not follow the
                    # last one means pages overlap, repeat or come out of order, so the view is not trustworthy.
                    key = _id_order(involvement_id)
                    if last_id is not None and key <= last_id:
                        raise _invalid_response(INVOLVEMENTS)
                    last_id = key
            flags.extend(self._flags_in(items, INVOLVEMENTS))
            if page_token is None:
                return sorted(flags)
            if page_token in seen_tokens:
                raise _invalid_response(INVOLVEMENTS)  # the listing went round in a circle
            seen_tokens.add(page_token)
            if self._clock() > deadline:
                break
        raise FatalRemoteError(
            f"One's listing on {INVOLVEMENTS} did not end within {self._max_listing_pages} pages"
            f" or {self._listing_deadline:.0f} s",
            code="LISTING_TOO_LONG",
            endpoint=INVOLVEMENTS,
        )

    def _page(self, size: int, page_token: str | None) -> tuple[list[Any], str | None]:
        params = {"status": "active", "pageSize": str(size)}
        if page_token is not None:
            params["pageToken"] = page_token
        payload = _json_object(self._call("GET", INVOLVEMENTS, self._base_url + INVOLVEMENTS, params=params), INVOLVEMENTS)
        next_token = payload.get("nextPageToken")
        if not (next_token is None or isinstance(next_token, str)):
            raise _invalid_response(INVOLVEMENTS)
        return _items(payload, INVOLVEMENTS), next_token or None

    def _current_version(self, url: str) -> int | None:
        """The version One holds now, or None when the flag is gone (or no longer active)."""
        try:
            answer = self._call("GET", INVOLVEMENT, url)
        except FatalRemoteError as exc:
            if _is_gone(exc):
                return None
            raise
        payload = _json_object(answer, INVOLVEMENT)
        if payload.get("serviceTeam") != SERVICE_TEAM or payload.get("involvementType") != INVOLVEMENT_TYPE:
            raise FatalRemoteError(
                f"Refused to remove an involvement that is not ours on {INVOLVEMENT}", code="NOT_OURS", endpoint=INVOLVEMENT
            )
        if payload.get("status", "active") != "active":
            return None
        match = _ETAG_VERSION.fullmatch(answer.headers.get("ETag", "").strip())
        version = int(match.group(1)) if match else payload.get("version")
        if type(version) is not int:
            raise _invalid_response(INVOLVEMENT)
        return version

    def _flags_in(self, items: list[Any], endpoint: str) -> list[Flag]:
        flags: list[Flag] = []
        ignored = malformed = 0
        for item in items:
            if (
                not isinstance(item, dict)
                or item.get("serviceTeam") != SERVICE_TEAM
                or item.get("involvementType") != INVOLVEMENT_TYPE
            ):
                ignored += 1
                continue
            if item.get("status", "active") != "active":
                ignored += 1
                continue
            flag = _flag_from(item)
            if flag is None:
                malformed += 1
            else:
                flags.append(flag)
        for reason, count in (("not_ours_or_inactive", ignored), ("malformed", malformed)):
            if count:
                structlog.get_logger(__name__).warning("one.items_skipped", endpoint=endpoint, reason=reason, count=count)
        return flags

    def _call(
        self,
        method: str,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Answer:
        """One logical call: retried on retriable errors only, within attempts and a deadline; 2xx or an exception."""
        all_headers = {"Accept": "application/json", "X-Correlation-ID": uuid.uuid4().hex, **(headers or {})}
        retrying = Retrying(
            stop=stop_after_attempt(self._retry_attempts) | stop_before_delay(self._retry_deadline),
            wait=self._wait,
            retry=retry_if_exception_type(RetriableRemoteError),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(self._attempt, method, endpoint, url, params=params, headers=all_headers, data=data)

    def _attempt(
        self,
        method: str,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        data: bytes | None,
    ) -> Answer:
        token = self._tokens.current()
        answer = self._exchange(method, endpoint, url, token=token, params=params, headers=headers, data=data)
        if answer.status == 401:  # expired or revoked: one new token, one more try, then fatal
            token = self._tokens.replace(token)
            answer = self._exchange(method, endpoint, url, token=token, params=params, headers=headers, data=data)
        error = classify(answer, endpoint=endpoint)
        if error is not None:
            raise error
        return answer

    def _fetch_token(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "scope": SCOPE,
        }
        endpoint = self._token_endpoint
        answer = self._exchange("POST", endpoint, self._token_url, token=None, headers={"Accept": "application/json"}, form=form)
        if answer.status in (400, 401):
            raise FatalRemoteError(
                "One rejected the client credentials", status=answer.status, code="CREDENTIALS_REJECTED", endpoint=endpoint
            )
        error = classify(answer, endpoint=endpoint)
        if error is not None:
            raise error
        payload = _json_object(answer, endpoint)
        token, token_type, expires_in = (
            payload.get("access_token"),
            payload.get("token_type", "Bearer"),
            payload.get("expires_in"),
        )
        if not isinstance(token, str) or not token or not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise _invalid_response(endpoint)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            return token, float(expires_in)
        return token, _DEFAULT_TOKEN_LIFETIME

    def _exchange(
        self,
        method: str,
        endpoint: str,
        url: str,
        *,
        token: str | None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Answer:
        """One HTTP request and its bounded answer, with explicit timeouts, no redirects, requests' exceptions translated."""
        self._pacer.wait()
        started = time.perf_counter()
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                headers=headers,
                data=data if form is None else form,
                auth=_Auth(token),
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
                stream=True,  # the body is read below, never more than MAX_RESPONSE_BYTES of it
            )
            with response:
                body = _read_capped(response)
        except requests.RequestException as exc:
            self._report(method, endpoint, None, started)
            raise translate_exception(exc, method=method, endpoint=endpoint) from None  # the original names the URL
        except _TooLarge:
            self._report(method, endpoint, response.status_code, started)
            message = f"One's answer on {endpoint} is larger than {MAX_RESPONSE_BYTES} bytes"
            raise FatalRemoteError(message, code="INVALID_RESPONSE", endpoint=endpoint) from None
        self._report(method, endpoint, response.status_code, started)
        answer = Answer(response.status_code, response.headers, body)
        rate_limited = answer.status == 429
        retry_after = parse_retry_after(answer.headers.get("Retry-After")) if rate_limited else None
        self._pacer.answered(rate_limited, None if retry_after is None else min(retry_after, self._retry_max_delay))
        return answer

    def _report(self, method: str, endpoint: str, status: int | None, started: float) -> None:
        if self._on_request is not None:
            self._on_request(method, endpoint, status, time.perf_counter() - started)

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
        endpoint = exc.endpoint or "?"
        delay = state.upcoming_sleep
        structlog.get_logger(__name__).warning(
            "http.retry_scheduled",
            endpoint=endpoint,
            status=exc.status,
            code=exc.code,
            attempt=state.attempt_number,
            delay_s=round(delay, 3),
        )
        if self._on_retry is not None:
            self._on_retry(endpoint, exc.code or f"HTTP_{exc.status}")

    # ---- URLs

    def _person_url(self, person_id: str) -> str:
        if not is_valid_person_id(person_id):
            raise ContractViolation(
                f"Refused to put a malformed person id in {PERSON_INVOLVEMENTS}",
                code="INVALID_PERSON_ID",
                endpoint=PERSON_INVOLVEMENTS,
            )
        return self._base_url + PERSON_INVOLVEMENTS.format(personId=person_id)

    def _involvement_url(self, involvement_id: str) -> str:
        if not _is_valid_involvement_id(involvement_id):
            raise ContractViolation(
                f"Refused to put a malformed involvement id in {INVOLVEMENT}", code="INVALID_INVOLVEMENT_ID", endpoint=INVOLVEMENT
            )
        return self._base_url + INVOLVEMENT.format(id=quote(involvement_id, safe=""))


def _is_gone(exc: RemoteError) -> bool:
    return exc.status == 404 and exc.code == INVOLVEMENT_NOT_FOUND


def _is_valid_involvement_id(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_INVOLVEMENT_ID_LENGTH
        and value not in (".", "..")
        and value.isprintable()
        and not any(ch.isspace() for ch in value)
    )


def _flag_from(item: Mapping[str, Any]) -> Flag | None:
    """A Flag from a listed item of ours, or None when its ids are unusable.

    A missing or odd version becomes 0: the removal then meets 412, re-reads the version and still
    removes it, which is better than silently keeping a flag that should go.
    """
    involvement_id, person_id, version = item.get("id"), item.get("personId"), item.get("version")
    if not _is_valid_involvement_id(involvement_id) or not isinstance(person_id, str) or not is_valid_person_id(person_id):
        return None
    return Flag(involvement_id, person_id, version if type(version) is int and version >= 0 else 0)


class _TooLarge(Exception):
    """Internal: an answer body passed MAX_RESPONSE_BYTES."""


def _read_capped(response: requests.Response) -> bytes:
    """The (decoded) body of a streamed response, refusing to read more than MAX_RESPONSE_BYTES of it.

    A declared Content-Length over the cap is refused before reading; otherwise at most one byte more
    than the cap is read, so a huge or endless body (or a compression bomb) costs at most the cap.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _id_order(involvement_id: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key for involvement ids that orders their numbers as numbers (INV-999999 before INV-1000000)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(involvement_id) if part)
