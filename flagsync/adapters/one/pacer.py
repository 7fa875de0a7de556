"""Pacing requests to One across every writer thread, and backing off together when One answers 429."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Pacer:
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

    @property
    def interval(self) -> float:
        """The spacing between request starts in force now, in seconds (0: none)."""
        with self._lock:
            return max(self._interval, self._learned_interval)

    def wait(self) -> None:
        """Block this thread until it may start its next request."""
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
