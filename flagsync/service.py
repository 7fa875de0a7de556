"""The sync service: read both sides, plan with the pure core, apply the plan, record the outcome.

Gather → decide → apply. Nothing here knows about SQL, CSV or HTTP; it talks to the ports.

Safety rules carried out here (product.md section 4):
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

import contextvars
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import structlog

from flagsync.core.model import Flag, Plan, Rules, RunOutcome, RunTrigger, SourceItem
from flagsync.core.planner import build_plan
from flagsync.core.rule import Gathered, Gatherer
from flagsync.core.schedule import settled_removals
from flagsync.errors import ContractViolation, FlagsyncError, PersonUnavailable, RemoteError, RunInterrupted
from flagsync.ports import (
    AuditEntry,
    AuditTrail,
    ConsentSource,
    CreateOutcome,
    FlagGateway,
    NoTelemetry,
    RunFence,
    StateStore,
    Telemetry,
)

log = structlog.get_logger("flagsync.service")

#: Confirmed changes are written to the audit trail at least this often, and in batches of at most this many.
AUDIT_FLUSH_SECONDS = 1.0
AUDIT_BATCH = 100

#: At most this many confirmed changes may be waiting for the audit trail: writers wait for the trail to
#: catch up, so that a state store that stops taking writes (a full disk) also stops the changes to One.
MAX_UNAUDITED = 2 * AUDIT_BATCH


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
            "held": len(plan.held),
            "unchanged": len(plan.unchanged),
            "unmatched": len(plan.unmatched),
            "quarantined": len(plan.quarantined),
            "attention": len(plan.attention),
            "flags_in_one": plan.current_flags,
        }


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
        self._lock = lock or (lambda: nullcontext(_NO_FENCE))
        self._clock = clock
        self._telemetry: Telemetry = telemetry or NoTelemetry()
        self.stop_event = threading.Event()
        # People One refused (archived, merged, ...), with the reason and when to ask again: a
        # converged system must not knock on One's door for them every cycle.
        self._person_issue_backoff = person_issue_backoff
        self._refused: dict[str, tuple[str, datetime]] = {}

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
            gathered = self._gather(self._source.read_all(now), progress)
            current = self._list_all(progress)
        else:
            gathered, current = self._read_people(person_ids, now)
        return build_plan(gathered, current, now, self._rules, scope=person_ids, allow_mass_removal=allow_mass_removal)

    def _gather(self, items: Iterable[SourceItem], progress: ProgressFn | None) -> Gathered:
        gatherer = Gatherer()
        count = 0
        for item in items:
            gatherer.add(item)
            count += 1
            if count % 1000 == 0:
                if self.stop_event.is_set():
                    raise RunInterrupted("stopped while reading the consent records")
                if progress is not None:
                    progress(Phase.READ_SOURCE, count, None)
        if progress is not None:
            progress(Phase.READ_SOURCE, count, count)
        return gatherer.result()

    def _list_all(self, progress: ProgressFn | None) -> list[Flag]:
        if progress is not None:
            progress(Phase.LIST_ONE, 0, None)
        flags = self._gateway.list_flags()
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
        audit = _AuditBuffer(self._state, report.run_id, self._clock)
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

    def _apply(self, plan: Plan, report: RunReport, progress: ProgressFn | None, audit: _AuditBuffer, fence: RunFence) -> None:
        now = self._clock()
        work: list[Callable[[], ChangeResult]] = []
        for person_id in plan.adds:
            refused = self._refused.get(person_id)
            if refused is not None and refused[1] > now:
                skipped = ChangeResult("add", person_id, "person_issue", refused[0])
                report.changes.append(skipped)
                audit.add(AuditEntry(skipped.action, skipped.person_id, skipped.outcome, skipped.reason))
            else:
                # One idempotency key per planned create, reused by every retry of that create.
                work.append(self._creator(person_id, uuid.uuid4().hex))
        work += [self._remover(flag) for flag in plan.removes]
        total = len(work)
        if progress is not None and total:
            progress(Phase.APPLY, 0, total)
        unaudited = threading.Semaphore(MAX_UNAUDITED)
        audit.on_written = unaudited.release
        for result in self._run_bounded(work, unaudited, fence):
            report.changes.append(result)
            audit.add(AuditEntry(result.action, result.person_id, result.outcome, result.reason), counted=True)
            if result.outcome == "person_issue":
                self._refused[result.person_id] = (result.reason or "", now + self._person_issue_backoff)
            self._telemetry.change_applied(result.action, result.outcome)
            self._log_change(result)
            if progress is not None:
                progress(Phase.APPLY, len(report.changes), total)

    def _run_bounded(
        self, work: Sequence[Callable[[], ChangeResult]], slots: threading.Semaphore, fence: RunFence
    ) -> Iterator[ChangeResult]:
        """Run the writes on at most max_concurrency threads, yielding results as they come.

        Each worker takes its next write itself, so no write waits for this thread to hand it out;
        once a stop is requested (or a write fails unexpectedly) no worker starts another. A worker
        takes one of `slots` before each write (the caller gives them back as results are recorded)
        and checks the `fence` (a lost run lock raises RunInterrupted, which ends every worker).
        """
        jobs = iter(work)
        take = threading.Lock()
        results: queue.SimpleQueue[ChangeResult | BaseException | None] = queue.SimpleQueue()
        abort = threading.Event()

        def stopping() -> bool:
            return self.stop_event.is_set() or abort.is_set()

        def worker() -> None:
            try:
                while not stopping():
                    while not slots.acquire(timeout=0.1):
                        if stopping():
                            return
                    with take:
                        job = next(jobs, None)
                    if job is None:
                        return
                    fence.check()
                    results.put(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
                abort.set()
                results.put(exc)
            finally:
                results.put(None)

        workers = min(self._max_concurrency, len(work))
        with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="flagsync-write") as pool:
            # Each worker runs in a copy of this context, so its log lines keep the run id.
            for _ in range(workers):
                pool.submit(contextvars.copy_context().run, worker)
            finished = 0
            try:
                while finished < workers:
                    item = results.get()
                    if item is None:
                        finished += 1
                    elif isinstance(item, BaseException):
                        raise item
                    else:
                        yield item
            finally:
                abort.set()  # whatever ended this loop early, start no further write

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
    def _log_change(result: ChangeResult) -> None:
        if result.outcome in ("ok", "already_present"):
            event = "flag.added" if result.action == "add" else "flag.removed"
            log.info(event, person_id=result.person_id, outcome=result.outcome)
        elif result.outcome == "person_issue":
            log.warning("flag.person_issue", person_id=result.person_id, reason=result.reason)
        elif result.alert:
            log.error("flag.contract_violation", person_id=result.person_id, code=result.reason, action=result.action)
        else:
            log.warning("flag.failed", person_id=result.person_id, code=result.reason, action=result.action)

    # ------------------------------------------------------------------------------------------
    # Remembering

    def _remember(self, plan: Plan, report: RunReport, full: bool, now: datetime) -> None:
        """Store held removals, settle stored ones (`settled_removals`) and, for full runs, replace the report.

        The audit trail is written as changes happen (`_AuditBuffer`). Quarantined, unmatched and
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
            issues = [(c.person_id, c.reason or "") for c in report.person_issues]
            self._state.replace_report(plan.quarantined, plan.unmatched, plan.attention, issues)
            self._telemetry.quarantined_records(len(plan.quarantined))


class _AuditBuffer:
    """Audit events of one run, written to the state store in small batches as they come.

    A batch is written when it reaches `AUDIT_BATCH` events or `AUDIT_FLUSH_SECONDS` after the last
    write, and at the end; so a run stopped by a signal, or a process killed, loses at most the
    last second of its audit trail, never all of it. A failure to write (a full disk) raises, which
    stops the run's further writes: no change is made that cannot be audited.
    """

    def __init__(self, state: AuditTrail, run_id: str, clock: Callable[[], datetime]) -> None:
        self._state = state
        self._run_id = run_id
        self._clock = clock
        self._rows: list[AuditEntry] = []
        self._counted = 0
        self._written_at = time.monotonic()
        #: Told how many `counted` rows each successful write carried (the writers' slots to give back).
        self.on_written: Callable[[int], None] = lambda _n: None

    def add(self, row: AuditEntry, *, counted: bool = False) -> None:
        self._rows.append(row)
        self._counted += counted
        if len(self._rows) >= AUDIT_BATCH or time.monotonic() - self._written_at >= AUDIT_FLUSH_SECONDS:
            self.flush()

    def extend(self, rows: Iterable[AuditEntry]) -> None:
        for row in rows:
            self.add(row)

    def flush(self) -> None:
        rows, counted = self._rows, self._counted
        self._rows, self._counted = [], 0
        self._written_at = time.monotonic()
        if rows:
            self._state.record_events(self._run_id, rows, self._clock())
        if counted:
            self.on_written(counted)


class _NoFence:
    """The fence of a service built without a run lock (tests of one process): never lost."""

    def check(self) -> None:
        """Nothing to check."""


_NO_FENCE = _NoFence()


def _code(exc: RemoteError) -> str:
    return exc.code or type(exc).__name__
