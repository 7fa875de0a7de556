"""A change poll spaces out the full reconciles it starts; between them it still takes the fast path."""

from __future__ import annotations

import pytest

from flagsync.core.model import RunOutcome
from flagsync.core.schedule import MIN_FULL_INTERVAL_SECONDS, PollAction, change_poll_step, full_reconcile_due, watermark_moves


@pytest.mark.parametrize(
    ("since", "due"),
    [(None, True), (0.0, False), (MIN_FULL_INTERVAL_SECONDS - 0.1, False), (MIN_FULL_INTERVAL_SECONDS, True), (3600.0, True)],
)
def test_full_reconcile_due(since: float | None, due: bool) -> None:
    """A poll may start a full reconcile when none ran yet, or the last one ended at least the minimum interval ago."""
    assert full_reconcile_due(since) is due


@pytest.mark.parametrize(
    ("removal_due", "changed", "full_due", "action", "reason"),
    [
        (True, None, True, PollAction.FULL, "PENDING_REMOVAL"),
        (True, frozenset(), False, PollAction.NOTHING, "NOTHING_CHANGED"),  # the removal waits; nobody changed
        (True, frozenset({"P1"}), False, PollAction.PEOPLE, "CHANGED"),  # a withdrawal is still honoured fast
        (False, None, False, PollAction.WAIT, "FULL_DEFERRED"),
        (True, None, False, PollAction.WAIT, "FULL_DEFERRED"),
        (False, frozenset(f"P{n}" for n in range(201)), False, PollAction.WAIT, "FULL_DEFERRED"),
        (False, frozenset(f"P{n}" for n in range(201)), True, PollAction.FULL, "MANY_CHANGED"),
        (False, None, True, PollAction.FULL, "SOURCE_CANNOT_TELL"),
    ],
)
def test_change_poll_step_when_a_full_reconcile_is_not_due(
    removal_due: bool, changed: frozenset[str] | None, full_due: bool, action: PollAction, reason: str
) -> None:
    """Not due: a wanted full reconcile waits, a pending removal lets the poll take the fast path."""
    step = change_poll_step(removal_due=removal_due, changed=changed, full_due=full_due)
    assert (step.action, step.reason) == (action, reason)


@pytest.mark.parametrize("outcome", [None, RunOutcome.CONVERGED])
def test_a_waiting_step_never_moves_the_watermark(outcome: RunOutcome | None) -> None:
    """A deferred full reconcile covered nothing, so the same change asks again at the next poll."""
    assert watermark_moves(PollAction.WAIT, outcome) is False
