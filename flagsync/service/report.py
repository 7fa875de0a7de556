"""What a run did, as the CLI and the demo show it: the result of each write and the run's report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from flagsync.core.model import Plan, RunOutcome, RunTrigger


class Phase(StrEnum):
    READ_SOURCE = "reading consent records"
    LIST_ONE = "listing flags in One"
    APPLY = "applying changes"


#: progress(phase, done, total): total is None while unknown.
ProgressFn = Callable[[Phase, int, int | None], None]


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """The outcome of one write: `person_id` is held in memory only, for the terminal report."""

    action: str  # "add" | "remove"
    person_id: str
    outcome: str  # "ok", "already_present", "failed", "person_issue"
    reason: str | None = None
    involvement_id: str | None = None  # removals only
    alert: bool = False  # One rejected the request as malformed: a bug someone must look at


@dataclass(slots=True)
class RunReport:
    """What a run did; what the CLI prints and turns into an exit code."""

    run_id: str | None
    trigger: RunTrigger
    outcome: RunOutcome
    plan: Plan | None = None
    changes: list[ChangeResult] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    dry_run: bool = False

    @property
    def failed(self) -> list[ChangeResult]:
        return [c for c in self.changes if c.outcome == "failed"]

    @property
    def person_issues(self) -> list[ChangeResult]:
        return [c for c in self.changes if c.outcome == "person_issue"]

    def counts(self) -> dict[str, int]:
        plan = self.plan or Plan()
        return {
            "adds": sum(1 for c in self.changes if c.action == "add" and c.outcome in ("ok", "already_present")),
            "removes": sum(1 for c in self.changes if c.action == "remove" and c.outcome == "ok"),
            "failed": len(self.failed),
            "person_issues": len(self.person_issues),
            "skipped": len(plan.skipped),
            "held": len(plan.held),
            "unchanged": len(plan.unchanged),
            "unmatched": len(plan.unmatched),
            "quarantined": len(plan.quarantined),
            "attention": len(plan.attention),
            "flags_in_one": plan.current_flags,
        }


@dataclass(frozen=True, slots=True)
class SourceSurvey:
    """What a whole read of the consent source found, in counts only (for `flagsync check`)."""

    records: int
    people: int
    quarantined: int
    unmatched: int
