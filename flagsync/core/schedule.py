"""Pure decisions between runs: which stored removals a run settles, what a change poll does, when the watermark moves.

No I/O, no clock; table-tested in tests/core/test_schedule.py. The daemon carries out what these return.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from flagsync.core.model import Plan, RunOutcome

__all__ = [
    "FULL_RUN_HEALTHY",
    "MIN_FULL_INTERVAL_SECONDS",
    "PERSON_SCOPE_LIMIT",
    "PollAction",
    "PollStep",
    "change_poll_step",
    "full_reconcile_due",
    "settled_removals",
    "watermark_moves",
]


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


# --------------------------------------------------------------------------------------------
# The daemon's change poll


#: Above this many changed people a change poll reads the whole source instead of person by person.
PERSON_SCOPE_LIMIT = 200

#: A change poll starts a full reconcile (for a pending removal, or a change the source cannot place) at
#: most this often: polls come every second, and a full reconcile lists all of One. Between two, the
#: polls still take the fast path for the people who changed. The start-up and the scheduled full
#: reconciles are not limited by it.
MIN_FULL_INTERVAL_SECONDS = 30.0


class PollAction(StrEnum):
    NOTHING = "nothing"  # nobody changed: no run at all
    PEOPLE = "people"  # sync just these people
    FULL = "full"  # a full reconcile
    WAIT = "wait"  # a full reconcile is wanted but one ran too recently: nothing now, and the watermark stays


@dataclass(frozen=True, slots=True)
class PollStep:
    """What one change poll does, and why (`reason` is a stable word for logs)."""

    action: PollAction
    reason: str
    person_ids: frozenset[str] = frozenset()


def full_reconcile_due(since_last_full: float | None, min_interval: float = MIN_FULL_INTERVAL_SECONDS) -> bool:
    """Whether a change poll may start a full reconcile, `since_last_full` seconds after the last one ended (None: none yet)."""
    return since_last_full is None or since_last_full >= min_interval


def change_poll_step(
    *,
    removal_due: bool,
    changed: frozenset[str] | None,
    person_limit: int = PERSON_SCOPE_LIMIT,
    full_due: bool = True,
) -> PollStep:
    """The change poll's next step from what is stored and what the source says changed.

    `removal_due`: a pending (not held) removal is stored - removal is a duty, so a full reconcile
    retries it at every poll where `full_due` (see `full_reconcile_due`) until One confirms it.
    `changed`: the people the source says changed since the watermark, or None when it cannot tell
    (the first poll, rows deleted); it is not asked (None) when a due removal makes the poll a full
    reconcile anyway. A full reconcile that is not due yet waits (the watermark stays, so the
    same change asks again at the next poll); a removal not yet due lets the poll take the fast path.
    """
    if removal_due and full_due:
        return PollStep(PollAction.FULL, "PENDING_REMOVAL")
    if changed is None:
        return PollStep(PollAction.FULL, "SOURCE_CANNOT_TELL") if full_due else PollStep(PollAction.WAIT, "FULL_DEFERRED")
    if len(changed) > person_limit:
        return PollStep(PollAction.FULL, "MANY_CHANGED") if full_due else PollStep(PollAction.WAIT, "FULL_DEFERRED")
    if not changed:
        return PollStep(PollAction.NOTHING, "NOTHING_CHANGED")
    return PollStep(PollAction.PEOPLE, "CHANGED", changed)


#: Outcomes of a full run that read both sides and planned: the daemon is doing its job.
FULL_RUN_HEALTHY = frozenset({RunOutcome.CONVERGED, RunOutcome.CHANGES_FAILED, RunOutcome.HELD})


def watermark_moves(action: PollAction, outcome: RunOutcome | None) -> bool:
    """Whether the change watermark may move past what this step (and its run's `outcome`) covered.

    A full run that read both sides and planned covers every change up to the watermark taken before
    it, even when some writes failed (they are stored as pending and retried). A person-scoped run
    covers its people only when it applied everything (or held removals, which are stored): after a
    failed write the same people must be polled again. A poll where nobody changed moves it freely.
    """
    if action is PollAction.NOTHING:
        return True
    if action is PollAction.WAIT:
        return False  # nothing covered the change yet
    if outcome is None:
        return False  # the run did not happen (the run lock was taken) or did not finish
    if action is PollAction.FULL:
        return outcome in FULL_RUN_HEALTHY
    return outcome in (RunOutcome.CONVERGED, RunOutcome.HELD)
