"""The OAuth2 access token, fetched once and shared by every thread until shortly before it expires."""

from __future__ import annotations

import threading
from collections.abc import Callable


class TokenCache:
    """Holds the access token until shortly before it expires; one fetch at a time.

    `fetch` returns (token, lifetime in seconds). The token is renewed a minute before it expires (or
    half its lifetime for short-lived ones), and at once when One rejects it (`replace`).
    """

    def __init__(self, fetch: Callable[[], tuple[str, float]], *, clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def current(self) -> str:
        """A token believed valid, fetching one if there is none or it is about to expire."""
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
