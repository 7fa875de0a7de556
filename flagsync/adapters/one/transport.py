"""The gateway's transport: one HTTP request to One and its bounded answer, on requests' connection-pooling adapter.

A prepared request is built here (no `requests.Session`, so nothing is merged in from the
environment, cookies or netrc) and sent on an `HTTPAdapter` with explicit timeouts, no redirects and
urllib3's own retries off; the answer's body is read up to `MAX_RESPONSE_BYTES` and never
decompressed. Failures leave as `RemoteError`s (`classify.translate_exception`); a URL never does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import requests
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from flagsync.adapters.one.classify import Answer, translate_exception
from flagsync.adapters.one.endpoint import OneEndpoint
from flagsync.errors import FatalRemoteError

#: The largest answer body read from One (a listing page of 100 flags is about 25 KB). Anything larger
#: fails the call as INVALID_RESPONSE without being read further.
MAX_RESPONSE_BYTES: Final = 1024 * 1024

_USER_AGENT: Final = "flagsync"


@dataclass(frozen=True, slots=True)
class Request:
    """One logical call: what to send, and the correlation id every attempt of it carries."""

    method: str
    endpoint: str  # the URL template, for errors, logs and metrics
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | None = None  # str: the token form, ASCII (as requests itself sends a form)
    correlation_id: str = field(default_factory=lambda: os.urandom(16).hex())  # random per call, the same on its retries
    idempotency_key: str | None = None


class Transport:
    """Sends `Request`s to One on a pool of `pool_size` connections; thread-safe (requests' adapter is)."""

    def __init__(self, endpoint: OneEndpoint, *, pool_size: int, adapter: HTTPAdapter | None = None) -> None:
        self._timeout = (endpoint.connect_timeout, endpoint.read_timeout)
        self._verify: str | bool = str(endpoint.ca_bundle) if endpoint.ca_bundle is not None else True
        # Only the explicit one.proxy: HTTP(S)_PROXY, REQUESTS_CA_BUNDLE and ~/.netrc are never consulted,
        # because no requests.Session (which reads them) is involved at all.
        self._proxies = {} if endpoint.proxy is None else {"http": endpoint.proxy, "https": endpoint.proxy}
        # Retries happen in exactly one place (the gateway's tenacity): urllib3's own are switched off.
        self.adapter = adapter or HTTPAdapter(
            pool_connections=2,
            pool_maxsize=pool_size,
            max_retries=Retry(total=0, read=False, redirect=False, raise_on_redirect=False, raise_on_status=False),
        )

    def send(self, request: Request, token: str | None) -> Answer:
        """The bounded answer to `request` (with the bearer `token`, if any), or a RemoteError naming only its template."""
        try:
            response = self.adapter.send(
                _prepare(request, token),
                stream=True,
                timeout=self._timeout,
                verify=self._verify,
                proxies=self._proxies,
                cert=None,
            )
            body = _read_capped(response)
        except requests.RequestException as exc:
            # The original names the URL (so perhaps a person id): only its type and the template leave.
            raise translate_exception(exc, method=request.method, endpoint=request.endpoint) from None
        except _TooLarge:
            message = f"One's answer on {request.endpoint} is larger than {MAX_RESPONSE_BYTES} bytes"
            raise FatalRemoteError(message, code="INVALID_RESPONSE", endpoint=request.endpoint) from None
        return Answer(response.status_code, response.headers, body)

    def close(self) -> None:
        """Close the pooled connections."""
        self.adapter.close()


class _TooLarge(Exception):
    """Internal: an answer body passed MAX_RESPONSE_BYTES."""


def _prepare(request: Request, token: str | None) -> requests.PreparedRequest:
    """The request as requests' adapter takes it, built directly: every header is ours, nothing is merged in."""
    headers = CaseInsensitiveDict(
        {
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # nothing to decompress, so no compression bomb either
            "X-Correlation-ID": request.correlation_id,
            **request.headers,
        }
    )
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if request.body is not None:
        headers["Content-Length"] = str(len(request.body))  # the form is ASCII, so characters are bytes
    prepared = requests.PreparedRequest()
    prepared.method = request.method
    prepared.url = request.url
    prepared.headers = headers
    prepared.body = request.body
    prepared.hooks = default_hooks()
    return prepared


def _read_capped(response: requests.Response) -> bytes:
    """The body of a streamed response, refusing to read more than MAX_RESPONSE_BYTES of it.

    A declared Content-Length over the cap is refused before reading; otherwise at most one byte more
    than the cap is read, so a huge or endless body costs at most the cap. A connection whose body was
    read to the end goes back to the pool; one cut off is closed.
    """
    raw = response.raw
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raw.close()
        raise _TooLarge
    try:
        body: bytes = raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
    except BaseException:
        raw.close()
        raise
    if len(body) > MAX_RESPONSE_BYTES:
        raw.close()
        raise _TooLarge
    raw.release_conn()
    return body
