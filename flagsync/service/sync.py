"""The sync service: read both sides, plan with the pure core, apply the plan, record the outcome.

Gather → decide → apply. Nothing here knows about SQL, CSV or HTTP; it talks to the ports.

Safety rules carried out here (docs/architecture.md, "Safety rules"):
- removals are planned only from a complete read of the source AND a complete listing of One;
  any read error ends the run before planning (`RunOutcome.ERROR`, nothing written);
- a failed removal is kept as pending in the state store and retried (the daemon escalates to a
  full reconcile while any are pending); held removals stay held until the guard is released;
- one run at a time: every writing run holds the run lock for its whole length;
- every confirmed change is written to the audit trail within a second (in small batches), and every
  way a run can end - a signal, a full disk, a bug - still records the run, as `interrupted` or
  `error`; a run that could not even do that (SIGKILL) is marked `abandoned` by the next run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from flagsync.core.fold import Gathered, Gatherer
from flagsync.core.model import Flag, Plan, Refusal, Rules, RunOutcome, RunTrigger, SourceItem
from flagsync.core.planner import build_plan
from flagsync.core.schedule import settled_removals
from flagsync.errors import ContractViolation, FlagsyncError, PersonUnavailable, RemoteError, RunInterrupted
from flagsync.ports import AuditEntry, ConsentSource, CreateOutcome, FlagGateway, NoTelemetry, RunFence, StateStore, Telemetry
from flagsync.service.audit import MAX_UNAUDITED, AuditBuffer
from flagsync.service.listing import ListingAhead
from flagsync.service.report import ChangeResult, Phase, ProgressFn, RunReport, SourceSurvey
from flagsync.service.writers import NO_FENCE, run_bounded

log = structlog.get_logger("flagsync.service")


class SyncService:
    """Runs plans and syncs against a consent source, One and the state store."""

    def __init__(
        self,
        *,
        source: ConsentSource,
        gateway: FlagGateway,
        state: StateStore,
        rules: Rules,
        max_concurrency: int = 8,
        lock: Callable[[], AbstractContextManager[RunFence]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        telemetry: Telemetry | None = None,
        person_issue_backoff: timedelta = timedelta(hours=1),
    ) -> None:
        self._source = source
        self._gateway = gateway
        self._state = state
        self._rules = rules
        self._max_concurrency = max(1, max_concurrency)
        self._lock = lock or (lambda: nullcontext(NO_FENCE))
        self._clock = clock
        self._telemetry: Telemetry = telemetry or NoTelemetry()
        self.stop_event = threading.Event()
        # People One refused (archived, merged, ...) are not asked again for this long: a converged system
        # must not knock on One's door for them every cycle. Stored (pseudonymised), so every run honours it.
        self._person_issue_backoff = person_issue_backoff

    # ------------------------------------------------------------------------------------------
    # Reading and planning (no writes)

    def plan(
        self,
        person_ids: frozenset[str] | None = None,
        *,
        allow_mass_removal: bool = False,
        progress: ProgressFn | None = None,
    ) -> Plan:
        """Read both sides and return the plan; writes nothing. Raises SourceError / RemoteError."""
        now = self._clock()
        if person_ids is None:
            # One is listed while the source is read (`ListingAhead`); planning waits for both, complete.
            with ListingAhead(self._gateway) as listing:
                gathered = self._gather(self._source.read_all(now), progress, listing)
                current = self._list_all(progress, listing)
        else:
            gathered, current = self._read_people(person_ids, now)
        return build_plan(
            gathered,
            current,
            now,
            self._rules,
            scope=person_ids,
            allow_mass_removal=allow_mass_removal,
            refusals=self._state.refusals(now),
        )

    def survey_source(self) -> SourceSurvey:
        """Read the whole consent source and count what it holds (records, people, quarantined, unmatched)."""
        gatherer = Gatherer()
        records = 0
        for item in self._source.read_all(self._clock()):
            gatherer.add(item)
            records += 1
        found = gatherer.result()
        return SourceSurvey(records, len(found.people), len(found.quarantined), len(found.unmatched))

    def _gather(self, items: Iterable[SourceItem], progress: ProgressFn | None, listing: ListingAhead) -> Gathered:
        gatherer = Gatherer()
        count = 0
        for item in items:
            gatherer.add(item)
            count += 1
            if count % 1000 == 0:
                if self.stop_event.is_set():
                    raise RunInterrupted("stopped while reading the consent records")
                listing.check()  # One could not be listed: the run fails now, not after the whole read
                if progress is not None:
                    progress(Phase.READ_SOURCE, count, None)
        if progress is not None:
            progress(Phase.READ_SOURCE, count, count)
        return gatherer.result()

    def _list_all(self, progress: ProgressFn | None, listing: ListingAhead) -> list[Flag]:
        if progress is not None:
            progress(Phase.LIST_ONE, 0, None)
        flags = listing.result(self.stop_event)
        if progress is not None:
            progress(Phase.LIST_ONE, len(flags), len(flags))
        self._telemetry.flags_in_one(len(flags))
        return flags

    def _read_people(self, person_ids: frozenset[str], now: datetime) -> tuple[Gathered, list[Flag]]:
        gatherer = Gatherer()
        current: list[Flag] = []
        for person_id in sorted(person_ids):
            for item in self._source.read_person(person_id, now):
                gatherer.add(item)
            try:
                current.extend(self._gateway.person_flags(person_id))
            except PersonUnavailable:
                # One will not show this person (archived, restricted, ...): an add reports why, and
                # any flag of ours still there is in the full reconcile's listing, which removes it.
                continue
        return gatherer.result(), current

    # ------------------------------------------------------------------------------------------
    # Syncing

    def sync(
        self,
        *,
        trigger: RunTrigger,
        person_ids: frozenset[str] | None = None,
        dry_run: bool = False,
        allow_mass_removal: bool = False,
        progress: ProgressFn | None = None,
    ) -> RunReport:
        """One run: full reconcile (`person_ids` None) or the given people only.

        Never raises for a failed read or an unreachable One: that is a run with outcome ERROR.
        Raises RunInProgressError when another run holds the lock, StateError if the state store fails.
        """
        if dry_run:
            return self._dry_run(trigger, person_ids, allow_mass_removal, progress)
        with self._lock() as fence:
            return self._locked_sync(trigger, person_ids, allow_mass_removal, progress, fence)

    def _dry_run(
        self, trigger: RunTrigger, person_ids: frozenset[str] | None, allow_mass_removal: bool, progress: ProgressFn | None
    ) -> RunReport:
        started = time.monotonic()
        try:
            plan = self.plan(person_ids, allow_mass_removal=allow_mass_removal, progress=progress)
        except FlagsyncError as exc:
            return RunReport(None, trigger, RunOutcome.ERROR, error=str(exc), dry_run=True)
        outcome = RunOutcome.HELD if plan.guard_tripped else RunOutcome.CONVERGED
        return RunReport(None, trigger, outcome, plan=plan, dry_run=True, duration_s=time.monotonic() - started)

    def _locked_sync(
        self,
        trigger: RunTrigger,
        person_ids: frozenset[str] | None,
        allow_mass_removal: bool,
        progress: ProgressFn | None,
        fence: RunFence,
    ) -> RunReport:
        started = time.monotonic()
        now = self._clock()
        # This run holds the lock, so no other run is in progress: any run still marked running died unrecorded.
        abandoned = self._state.abandon_unfinished()
        if abandoned:
            log.warning("sync.abandoned_runs_found", count=abandoned)
        run_id = self._state.start_run(trigger, now)
        # Bound as context variables, so that the gateway's events (retries) carry the run id too.
        with structlog.contextvars.bound_contextvars(run_id=run_id, trigger=trigger.value):
            report = RunReport(run_id, trigger, RunOutcome.ERROR)
            try:
                return self._run(
                    report, person_ids, allow_mass_removal=allow_mass_removal, progress=progress, started=started, fence=fence
                )
            except BaseException as exc:
                # Ctrl-C a second time, a full disk, a bug: record the run before the exception goes on.
                report.outcome = RunOutcome.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunOutcome.ERROR
                report.error = type(exc).__name__ if not isinstance(exc, FlagsyncError) else str(exc)
                try:
                    self._finish(report, started)
                except FlagsyncError as again:
                    log.error("sync.not_recorded", error_type=type(again).__name__, error=str(again))
                raise

    def _run(
        self,
        report: RunReport,
        person_ids: frozenset[str] | None,
        *,
        allow_mass_removal: bool,
        progress: ProgressFn | None,
        started: float,
        fence: RunFence,
    ) -> RunReport:
        log.info("sync.started")
        now = self._clock()
        try:
            plan = self.plan(person_ids, allow_mass_removal=allow_mass_removal, progress=progress)
        except RunInterrupted as exc:
            report.outcome, report.error = RunOutcome.INTERRUPTED, str(exc)
            return self._finish(report, started)
        except FlagsyncError as exc:
            report.error = str(exc)
            log.error("sync.read_failed", error_type=type(exc).__name__, error=str(exc))
            return self._finish(report, started)
        report.plan = plan
        assert report.run_id is not None  # a locked run always has one
        audit = AuditBuffer(self._state, report.run_id, self._clock)
        try:
            fence.check()  # the read may have taken a while: write nothing if the lock went meanwhile
            audit.extend(AuditEntry("hold", flag.person_id, "held", "MASS_REMOVAL_GUARD") for flag in plan.held)
            self._apply(plan, report, progress, audit, fence)
        except RunInterrupted as exc:
            # The lock is gone, so another run may be writing now: stop, record this run, and store nothing
            # else (settling pending removals from this run's plan could undo what the other run stored).
            audit.flush()
            report.outcome, report.error = RunOutcome.INTERRUPTED, str(exc)
            log.error("sync.lock_lost", error_type=type(exc).__name__, error=str(exc))
            return self._finish(report, started)
        finally:
            audit.flush()
        self._remember(plan, report, person_ids is None, now)
        if self.stop_event.is_set() and len(report.changes) < len(plan.adds) + len(plan.removes):
            report.outcome = RunOutcome.INTERRUPTED
        elif plan.guard_tripped:
            report.outcome = RunOutcome.HELD
            log.warning("sync.held", held=len(plan.held))
        elif report.failed:
            report.outcome = RunOutcome.CHANGES_FAILED
        else:
            report.outcome = RunOutcome.CONVERGED
        return self._finish(report, started)

    def _finish(self, report: RunReport, started: float) -> RunReport:
        report.duration_s = time.monotonic() - started
        counts = report.counts()
        if report.run_id is not None:
            self._state.finish_run(report.run_id, report.outcome, counts, self._clock())
        self._telemetry.run_finished(report.outcome, report.trigger, report.duration_s)
        pending = self._state.pending_removals()
        self._telemetry.removals_stored(pending)
        log.info("sync.completed", outcome=report.outcome.value, duration_s=round(report.duration_s, 3), **counts)
        return report

    # ------------------------------------------------------------------------------------------
    # Applying

    def _apply(self, plan: Plan, report: RunReport, progress: ProgressFn | None, audit: AuditBuffer, fence: RunFence) -> None:
        now = self._clock()
        # One idempotency key per planned create, reused by every retry of that create. People One refused
        # recently are not here at all: the plan lists them as skipped.
        work: list[Callable[[], ChangeResult]] = [self._creator(person_id, os.urandom(16).hex()) for person_id in plan.adds]
        # One bound logger for the run's changes: the module's lazy proxy would bind a new one for every line.
        run_log = log.bind()
        work += [self._remover(flag) for flag in plan.removes]
        total = len(work)
        if progress is not None and total:
            progress(Phase.APPLY, 0, total)
        unaudited = threading.Semaphore(MAX_UNAUDITED)
        audit.on_written = unaudited.release
        for result in run_bounded(work, concurrency=self._max_concurrency, stop=self.stop_event, slots=unaudited, fence=fence):
            report.changes.append(result)
            audit.add(AuditEntry(result.action, result.person_id, result.outcome, result.reason), counted=True)
            if result.outcome == "person_issue":
                self._state.record_refusal(result.person_id, Refusal(result.reason or "", now + self._person_issue_backoff))
            self._telemetry.change_applied(result.action, result.outcome)
            self._log_change(run_log, result)
            if progress is not None:
                progress(Phase.APPLY, len(report.changes), total)

    def _creator(self, person_id: str, key: str) -> Callable[[], ChangeResult]:
        def create() -> ChangeResult:
            try:
                outcome = self._gateway.create_flag(person_id, key)
            except PersonUnavailable as exc:
                return ChangeResult("add", person_id, "person_issue", exc.issue.value)
            except RemoteError as exc:
                return ChangeResult("add", person_id, "failed", _code(exc), alert=isinstance(exc, ContractViolation))
            return ChangeResult("add", person_id, "ok" if outcome is CreateOutcome.CREATED else "already_present")

        return create

    def _remover(self, flag: Flag) -> Callable[[], ChangeResult]:
        def remove() -> ChangeResult:
            try:
                self._gateway.remove_flag(flag)
            except RemoteError as exc:
                self._state.mark_pending(flag, self._clock())
                alert = isinstance(exc, ContractViolation)
                return ChangeResult("remove", flag.person_id, "failed", _code(exc), flag.involvement_id, alert=alert)
            self._state.clear_pending(flag.involvement_id)
            return ChangeResult("remove", flag.person_id, "ok", involvement_id=flag.involvement_id)

        return remove

    @staticmethod
    def _log_change(run_log: Any, result: ChangeResult) -> None:
        if result.outcome in ("ok", "already_present"):
            event = "flag.added" if result.action == "add" else "flag.removed"
            run_log.info(event, person_id=result.person_id, outcome=result.outcome)
        elif result.outcome == "person_issue":
            run_log.warning("flag.person_issue", person_id=result.person_id, reason=result.reason)
        elif result.alert:
            run_log.error("flag.contract_violation", person_id=result.person_id, code=result.reason, action=result.action)
        else:
            run_log.warning("flag.failed", person_id=result.person_id, code=result.reason, action=result.action)

    # ------------------------------------------------------------------------------------------
    # Remembering

    def _remember(self, plan: Plan, report: RunReport, full: bool, now: datetime) -> None:
        """Store held removals, settle stored ones (`settled_removals`) and, for full runs, replace the report.

        The audit trail is written as changes happen (`AuditBuffer`). Quarantined, unmatched and
        attention records go to the report that `status` shows, not to the audit trail: they are the
        state of the source, not activity, and would repeat every run.
        """
        for flag in plan.held:
            self._state.mark_pending(flag, now, held=True)
        confirmed = [c.involvement_id for c in report.changes if c.action == "remove" and c.outcome == "ok" and c.involvement_id]
        stored = [p.involvement_id for p in self._state.pending_removals()]
        for involvement_id in sorted(settled_removals(stored, plan, confirmed, full=full)):
            self._state.clear_pending(involvement_id)
        if full:
            # People One refused in this run, and those still left alone after refusing earlier.
            issues = [(c.person_id, c.reason or "") for c in report.person_issues]
            issues += [(skipped.person_id, skipped.reason) for skipped in plan.skipped]
            self._state.replace_report(plan.quarantined, plan.unmatched, plan.attention, issues)
            self._state.forget_expired_refusals(now)
            self._telemetry.quarantined_records(len(plan.quarantined))


def _code(exc: RemoteError) -> str:
    return exc.code or type(exc).__name__
