"""The gateway's shared back-off on 429: every writer holds until Retry-After, and One's sustained rate is learned."""

from __future__ import annotations

import threading

import pytest

from flagsync.adapters.one.pacer import Pacer


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def other_thread_wait(pacer: Pacer) -> None:
    thread = threading.Thread(target=pacer.wait)
    thread.start()
    thread.join()


def test_a_429_holds_the_other_threads_until_retry_after() -> None:
    """After a 429 with Retry-After 2, another thread's next request waits those 2 seconds."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append)
    pacer.answered(True, 2.0)
    other_thread_wait(pacer)
    assert waits == [pytest.approx(2.0)]


def test_the_thread_that_got_the_429_is_not_held_twice() -> None:
    """The thread whose retry already sleeps the Retry-After is not made to wait again by the hold."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append)
    pacer.answered(True, 2.0)
    pacer.wait()
    assert waits == []


def test_no_429_means_no_waiting() -> None:
    """Without a configured rate and without 429s, requests never wait."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append)
    for _ in range(5):
        pacer.answered(False, None)
        pacer.wait()
    assert waits == []


def test_a_second_episode_paces_at_the_rate_one_sustained() -> None:
    """Twenty answers between two rate-limit episodes two seconds apart make the pacer space requests 0.1 s apart."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append)
    pacer.answered(True, 1.0)
    clock.now += 2.0
    for _ in range(20):
        pacer.answered(False, None)
    pacer.answered(True, None)
    pacer.wait()
    pacer.wait()
    assert waits == [pytest.approx(0.1)]


def test_a_burst_of_429s_is_one_episode() -> None:
    """429s arriving while the hold is still ahead neither extend it nor teach a rate."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append)
    pacer.answered(True, 1.0)
    clock.now += 0.01
    pacer.answered(True, 5.0)
    clock.now += 0.99
    pacer.wait()
    pacer.wait()
    assert waits == []


def test_the_learned_rate_is_forgotten_after_relax_after() -> None:
    """relax_after seconds after learning a rate, the pacer stops pacing at it."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append, relax_after=30.0)
    pacer.answered(True, None)
    clock.now += 1.0
    for _ in range(20):
        pacer.answered(False, None)
    pacer.answered(True, None)
    clock.now += 31.0
    pacer.wait()
    pacer.wait()
    assert waits == []


def test_episodes_far_apart_teach_no_rate() -> None:
    """Two episodes further apart than learn_window say nothing about One's rate (the client may have been idle)."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append, learn_window=30.0)
    pacer.answered(True, None)
    clock.now += 100.0
    for _ in range(50):
        pacer.answered(False, None)
    pacer.answered(True, None)
    pacer.wait()
    pacer.wait()
    assert waits == []


def test_a_learned_rate_never_speeds_up_the_configured_one() -> None:
    """With 2 requests per second configured, a faster learned rate leaves the spacing at 0.5 s."""
    clock, waits = Clock(), []
    pacer = Pacer(2.0, clock=clock, sleep=waits.append)
    pacer.answered(True, None)
    clock.now += 1.0
    for _ in range(100):
        pacer.answered(False, None)
    pacer.answered(True, None)
    pacer.wait()
    pacer.wait()
    assert waits == [pytest.approx(0.5)]


def test_too_few_answers_teach_no_rate() -> None:
    """A 429 soon after a hold ends, with only a few answers between, says nothing about One's rate."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append, min_sample=20)
    pacer.answered(True, None)
    clock.now += 1.0
    for _ in range(2):
        pacer.answered(False, None)
    pacer.answered(True, None)
    pacer.wait()
    pacer.wait()
    assert waits == []


def test_a_learned_rate_is_not_lowered_by_later_429s() -> None:
    """While pacing at a learned rate, further 429s hold the writers but do not slow the pacing further."""
    clock, waits = Clock(), []
    pacer = Pacer(0.0, clock=clock, sleep=waits.append)
    pacer.answered(True, None)
    clock.now += 2.0
    for _ in range(20):
        pacer.answered(False, None)
    pacer.answered(True, None)
    clock.now += 10.0
    for _ in range(20):
        pacer.answered(False, None)
    pacer.answered(True, None)
    pacer.wait()
    pacer.wait()
    assert waits == [pytest.approx(0.1)]
