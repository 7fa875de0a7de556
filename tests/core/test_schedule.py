"""The pure rules for stored work between runs, as tables."""

from __future__ import annotations

import pytest

from flagsync.core.model import Flag, Plan
from flagsync.core.schedule import settled_removals

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
