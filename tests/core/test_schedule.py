"""The pure rules for stored work between runs, as tables."""

from __future__ import annotations

import pytest

from flagsync.core.model import Flag, Plan, RunOutcome
from flagsync.core.schedule import PollAction, change_poll_step, settled_removals, watermark_moves

A, B, C = Flag("INV-A", "P1", 1), Flag("INV-B", "P2", 1), Flag("INV-C", "P3", 1)


@pytest.mark.parametrize(
    ("pending", "plan", "confirmed", "full", "settled"),
    [
        # a full plan that no longer asks for a stored removal settles it
        ({"INV-A"}, Plan(), set(), True, {"INV-A"}),
        # a full plan still asking for it, not yet confirmed (failed again, or the run stopped first): kept
        ({"INV-A"}, Plan(removes=(A,)), set(), True, set()),
        # confirmed by One in this run: settled
        ({"INV-A"}, Plan(removes=(A,)), {"INV-A"}, True, {"INV-A"}),
        # held by the guard: kept
        ({"INV-A", "INV-B"}, Plan(held=(A, B)), set(), True, set()),
        # guard released and confirmed: settled; the unplanned one settled too
        ({"INV-A", "INV-B"}, Plan(removes=(A,)), {"INV-A"}, True, {"INV-A", "INV-B"}),
        # a scoped plan settles only what it confirmed
        ({"INV-A", "INV-B", "INV-C"}, Plan(removes=(C,)), {"INV-C"}, False, {"INV-C"}),
        ({"INV-A"}, Plan(), set(), False, set()),
        # nothing stored: nothing to settle
        (set(), Plan(removes=(A,)), {"INV-A"}, True, set()),
    ],
)
def test_settled_removals(pending: set[str], plan: Plan, confirmed: set[str], full: bool, settled: set[str]) -> None:
    """A stored removal is settled once One confirmed it, or when a complete plan no longer asks for it."""
    assert settled_removals(pending, plan, confirmed, full=full) == settled


@pytest.mark.parametrize(
    ("removal_due", "changed", "limit", "action", "reason"),
    [
        (True, frozenset({"P1"}), 200, PollAction.FULL, "PENDING_REMOVAL"),  # removal is a duty: every poll until confirmed
        (True, None, 200, PollAction.FULL, "PENDING_REMOVAL"),
        (False, None, 200, PollAction.FULL, "SOURCE_CANNOT_TELL"),
        (False, frozenset({f"P{n}" for n in range(201)}), 200, PollAction.FULL, "MANY_CHANGED"),
        (False, frozenset({f"P{n}" for n in range(200)}), 200, PollAction.PEOPLE, "CHANGED"),  # at the limit: still per person
        (False, frozenset({"P1", "P2"}), 200, PollAction.PEOPLE, "CHANGED"),
        (False, frozenset(), 200, PollAction.NOTHING, "NOTHING_CHANGED"),
        (False, frozenset({"P1"}), 0, PollAction.FULL, "MANY_CHANGED"),
    ],
)
def test_change_poll_step(removal_due: bool, changed: frozenset[str] | None, limit: int, action: PollAction, reason: str) -> None:
    """A due removal or a source that cannot tell forces a full run; many changes too; a few are synced person by person."""
    step = change_poll_step(removal_due=removal_due, changed=changed, person_limit=limit)
    assert (step.action, step.reason) == (action, reason)
    assert step.person_ids == (changed if action is PollAction.PEOPLE else frozenset())


@pytest.mark.parametrize(
    ("action", "outcome", "moves"),
    [
        (PollAction.NOTHING, None, True),
        (PollAction.FULL, RunOutcome.CONVERGED, True),
        (PollAction.FULL, RunOutcome.CHANGES_FAILED, True),  # failed writes are stored as pending and retried
        (PollAction.FULL, RunOutcome.HELD, True),
        (PollAction.FULL, RunOutcome.ERROR, False),
        (PollAction.FULL, RunOutcome.INTERRUPTED, False),
        (PollAction.FULL, None, False),  # skipped: the run lock was taken
        (PollAction.PEOPLE, RunOutcome.CONVERGED, True),
        (PollAction.PEOPLE, RunOutcome.HELD, True),
        (PollAction.PEOPLE, RunOutcome.CHANGES_FAILED, False),  # the same people are polled again
        (PollAction.PEOPLE, RunOutcome.ERROR, False),
        (PollAction.PEOPLE, RunOutcome.INTERRUPTED, False),
        (PollAction.PEOPLE, None, False),
    ],
)
def test_watermark_moves(action: PollAction, outcome: RunOutcome | None, moves: bool) -> None:
    """The watermark moves only past what a run really covered."""
    assert watermark_moves(action, outcome) is moves
