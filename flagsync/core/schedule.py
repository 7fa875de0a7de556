"""Pure decisions about stored work between runs: which pending and held removals a finished run settles.

No I/O, no clock; table-tested in tests/core/test_schedule.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from flagsync.core.model import Plan

__all__ = ["settled_removals"]


def settled_removals(pending: Iterable[str], plan: Plan, confirmed: Iterable[str], *, full: bool) -> frozenset[str]:
    """The stored removals (involvement ids in `pending`) that a run with this `plan` settles.

    A removal One `confirmed` in this run is settled in any run. A full plan is complete, so a stored
    removal it no longer asks for (consent given again, the flag gone from One, the guard released) is
    settled too; one it still asks for - to remove now or held by the guard - stays until One confirms
    it, even when the run stopped before trying it. A scoped plan sees only a few people, so it settles
    nothing it did not confirm.
    """
    done = set(confirmed)
    if not full:
        return frozenset(p for p in pending if p in done)
    still_due = {flag.involvement_id for flag in (*plan.removes, *plan.held)}
    return frozenset(p for p in pending if p in done or p not in still_due)
