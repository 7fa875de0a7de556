"""What `flagsync status` shows, read from the state store: recent runs, stored removals, the last full run's report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from flagsync.core.model import RunTrigger
from flagsync.ports import LastRunReport, PendingRemoval, PendingRemovals, ReportRow, RunLog, RunRecord


class _StatusSource(RunLog, PendingRemovals, LastRunReport, Protocol):
    """The parts of the state store that `status` reads."""


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot for `flagsync status`; pseudonyms only (`current_key_id` tells which key made today's)."""

    runs: list[RunRecord]
    unfinished: str  # what a run without an outcome is: "running", "abandoned", or "unfinished" (cannot tell)
    pending: list[PendingRemoval]
    report: list[ReportRow]
    next_full_due: datetime | None
    current_key_id: str

    @property
    def waiting(self) -> list[PendingRemoval]:
        return [p for p in self.pending if not p.held]

    @property
    def held(self) -> list[PendingRemoval]:
        return [p for p in self.pending if p.held]


def read_status(
    state: _StatusSource,
    *,
    run_in_progress: Callable[[], bool | None],
    full_reconcile_interval: float,
    current_key_id: str,
    limit: int = 10,
) -> Status:
    """Read the snapshot. `run_in_progress` says whether a run holds the lock (asked only if a run has no outcome)."""
    runs = state.recent_runs(limit)
    # A run without an outcome is running only while someone holds the lock; otherwise it died unrecorded.
    running = run_in_progress() if any(r.outcome is None for r in runs) else False
    last_full = state.last_success(RunTrigger.SCHEDULED_FULL)
    return Status(
        runs=runs,
        unfinished={True: "running", False: "abandoned", None: "unfinished"}[running],
        pending=state.pending_removals(),
        report=state.report(),
        next_full_due=None if last_full is None else last_full + timedelta(seconds=full_reconcile_interval),
        current_key_id=current_key_id,
    )
