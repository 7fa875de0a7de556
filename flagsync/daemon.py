"""The scheduled worker: one active replica leads (change poll, full reconcile, audit purge), any other stands by.

Leadership: the daemon holds the leader lock (`RunLock(role="leader")`: a PostgreSQL advisory lock, or
a file lock beside an SQLite state store) for as long as it leads, and checks it every poll. A replica
that cannot take it stands by, healthy, trying again every poll; when the leader dies its session
ends, the lock goes with it, and the standby takes over at its next poll with a full reconcile. Runs
still take the single-run lock, which keeps the leader apart from an operator's one-off run (the
daemon does not wait for it: it skips that cycle).

What each poll does, and when the change watermark moves, is decided by the pure functions in
`flagsync.core.schedule`; this module carries them out. Jobs run on a one-thread executor, so they
never overlap inside the process. APScheduler's default misfire grace of 1 s would silently drop
late runs, so it is disabled: a late job still runs, and coalescing folds a backlog into one run.
While a long run holds the change poll's job, each later tick is skipped (`max_instances` 1): that is
the design, so APScheduler's warning for it, once a poll interval, is dropped (`_ExpectedSkips`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flagsync.bootstrap import App
from flagsync.core.model import RunTrigger
from flagsync.core.schedule import (
    FULL_RUN_HEALTHY,
    PollAction,
    PollStep,
    change_poll_step,
    full_reconcile_due,
    watermark_moves,
)
from flagsync.daemon_http import HealthEndpoint
from flagsync.errors import ConfigError, FlagsyncError, RunInProgressError, RunInterrupted
from flagsync.logs import safe_error_summary
from flagsync.service import RunReport

log = structlog.get_logger("flagsync.daemon")

#: How long SIGTERM waits for a run in progress before the process leaves anyway (spec: exit within 10 s).
SHUTDOWN_GRACE_SECONDS = 8.0

#: How long the daemon's exit waits for a CSV person index being saved (after the grace above; the next process builds it).
INDEX_SAVE_WAIT_SECONDS = 1.0

#: While the change query keeps failing, it is logged at most this often (with the count of failures).
CHANGE_FAILURE_LOG_SECONDS = 60.0


#: The end of APScheduler 3's message for a skipped job (`apscheduler.schedulers.base`).
_SKIPPED_MESSAGE_END = "skipped: maximum number of running instances reached (%d)"


class _ExpectedSkips(logging.Filter):
    """Drop APScheduler's warning that a job was skipped because its previous run is still going.

    Jobs run one at a time by design; while a full reconcile inside the change poll takes minutes
    (a slow One), the warning would otherwise repeat every poll interval. The run's own duration is
    in `sync.completed` and the metrics; every other APScheduler warning still passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.endswith(_SKIPPED_MESSAGE_END))


_EXPECTED_SKIPS = _ExpectedSkips()


class Daemon:
    """Owns leadership, the scheduler, the health/metrics endpoint and the shutdown sequence."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings.sync
        self.started_at = time.monotonic()
        self.last_full_ok: float | None = None
        self.last_full_ended: float | None = None  # any outcome: a change poll spaces its full reconciles from it
        self.leading_since: float | None = None
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self._leader = app.leader_lock
        self._standby_logged = False
        self._lead_error = False
        self._changes_failures = 0  # consecutive change polls whose change query failed
        self._changes_failure_logged = 0.0
        logging.getLogger("apscheduler.scheduler").addFilter(_EXPECTED_SKIPS)  # the same filter once, however many daemons
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": SchedulerThreadPool(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._http: HealthEndpoint | None = None

    @property
    def leading(self) -> bool:
        return self.leading_since is not None

    # ------------------------------------------------------------------------------------------
    # Leadership

    def _lead(self) -> bool:
        """Whether this replica leads now: check the leader lock if held, else try to take it (starting with a full run)."""
        if self.stopping.is_set():
            return False
        if self.leading:
            try:
                self._leader.check()
                return True
            except RunInterrupted:
                self._step_down("LOCK_LOST")
                return False
        try:
            self._leader.acquire()
        except RunInProgressError:
            self._lead_error = False
            if not self._standby_logged:
                log.info("daemon.standby", reason="ANOTHER_REPLICA_LEADS")
                self._standby_logged = True
            return False
        except FlagsyncError as exc:
            self._lead_error = True
            log.error("daemon.leadership_failed", error_type=type(exc).__name__, error=str(exc))
            return False
        self._lead_error = False
        self.leading_since = time.monotonic()
        self._standby_logged = False
        self.app.metrics.leader.set(1)
        log.info("daemon.leading")
        return True

    def _step_down(self, reason: str) -> None:
        self.leading_since = None
        self.app.metrics.leader.set(0)
        log.warning("daemon.stepped_down", reason=reason)
        self._leader.release()

    # ------------------------------------------------------------------------------------------
    # Jobs

    def _run(self, trigger: RunTrigger, person_ids: frozenset[str] | None) -> RunReport | None:
        if self.stopping.is_set():
            return None
        self.idle.clear()
        try:
            return self.app.service.sync(trigger=trigger, person_ids=person_ids)
        except RunInProgressError:
            log.info("sync.skipped", reason="RUN_IN_PROGRESS", trigger=trigger.value)
            return None
        except FlagsyncError as exc:
            log.error("sync.failed", trigger=trigger.value, error_type=type(exc).__name__, error=str(exc))
            return None
        finally:
            self.idle.set()

    def full_reconcile(self) -> None:
        """While leading: list everything, repair drift, retry pending removals; then move the change watermark on."""
        if self._lead():
            self._full_reconcile()

    def _full_reconcile(self) -> None:
        try:
            watermark = self.app.source.changes_since(None).watermark
        except FlagsyncError as exc:
            log.error("source.watermark_failed", error_type=type(exc).__name__, error=str(exc))
            watermark = None
        report = self._run(RunTrigger.SCHEDULED_FULL, None)
        self.last_full_ended = time.monotonic()
        outcome = report.outcome if report is not None else None
        if outcome in FULL_RUN_HEALTHY:
            self.last_full_ok = time.monotonic()
            self.app.metrics.full_reconcile_ok()
        if watermark is not None and watermark_moves(PollAction.FULL, outcome):
            self.app.state.set_watermark(watermark)

    def change_poll(self) -> None:
        """While leading: sync just the people whose records changed (`change_poll_step` says what to do)."""
        just_took_over = not self.leading
        if not self._lead():
            return
        if just_took_over:
            self._full_reconcile()  # a new leader starts from a complete view
            return
        pending = self.app.state.pending_removals()
        self.app.metrics.removals_stored(pending)
        removal_due = any(not p.held for p in pending)
        since_full = None if self.last_full_ended is None else time.monotonic() - self.last_full_ended
        full_due = full_reconcile_due(since_full)
        changed: frozenset[str] | None = None
        watermark: str | None = None
        if not (removal_due and full_due):
            try:
                # Cheap while nothing changed: the source answers from its change probe (see its changes_since).
                changes = self.app.source.changes_since(self.app.state.get_watermark())
            except FlagsyncError as exc:
                self._changes_failed(exc)
                return
            self._changes_recovered()
            changed, watermark = changes.person_ids, changes.watermark
        self._carry_out(change_poll_step(removal_due=removal_due, changed=changed, full_due=full_due), watermark)

    def _changes_failed(self, exc: FlagsyncError) -> None:
        """Log a failed change query: the first of a series, then at most once a minute (polls come every second)."""
        now = time.monotonic()
        self._changes_failures += 1
        if self._changes_failures == 1 or now - self._changes_failure_logged >= CHANGE_FAILURE_LOG_SECONDS:
            log.error("source.changes_failed", error_type=type(exc).__name__, error=str(exc), count=self._changes_failures)
            self._changes_failure_logged = now

    def _changes_recovered(self) -> None:
        if self._changes_failures:
            log.info("source.changes_recovered", count=self._changes_failures)
            self._changes_failures = 0

    def _carry_out(self, step: PollStep, watermark: str | None) -> None:
        if step.action is PollAction.FULL:
            log.info("daemon.full_reconcile_due", reason=step.reason)
            self._full_reconcile()
            return
        if step.action is PollAction.WAIT:
            return  # the watermark stays: the same change asks for its full reconcile at the next poll
        outcome = None
        if step.action is PollAction.PEOPLE:
            report = self._run(RunTrigger.CHANGE_POLL, step.person_ids)
            outcome = report.outcome if report is not None else None
        if watermark_moves(step.action, outcome):
            self.app.state.set_watermark(watermark)
            self.app.metrics.change_poll_ok()

    def purge_audit(self) -> None:
        """While leading: drop audit events older than the retention period."""
        if not self._lead():
            return
        cutoff = datetime.now(UTC) - timedelta(days=self.app.settings.audit.retention_days)
        try:
            purged = self.app.state.purge_audit(cutoff)
        except FlagsyncError as exc:
            log.error("audit.purge_failed", error_type=type(exc).__name__, error=str(exc))
            return
        log.info("audit.purged", count=purged)

    # ------------------------------------------------------------------------------------------
    # Health

    def healthy(self) -> bool:
        """Alive, and standing by (reaching the state store) or leading with a full reconcile within 2x its interval."""
        if not self.scheduler.running or self.stopping.is_set():
            return False
        if self.leading_since is None:
            return not self._lead_error
        window = 2 * self.settings.full_reconcile_interval
        since = self.last_full_ok if self.last_full_ok is not None else self.leading_since
        return time.monotonic() - since <= window

    # ------------------------------------------------------------------------------------------
    # Life cycle

    def start(self) -> None:
        s = self.settings
        now = datetime.now(UTC)
        # The change poll comes first: it takes the lead (with a full reconcile) or finds another replica leading.
        self.scheduler.add_job(self.change_poll, "interval", seconds=s.change_poll_interval, next_run_time=now, id="change_poll")
        self.scheduler.add_job(
            self.full_reconcile,
            "interval",
            seconds=s.full_reconcile_interval,
            next_run_time=now + timedelta(seconds=s.full_reconcile_interval),
            id="full_reconcile",
        )
        self.scheduler.add_job(self.purge_audit, "interval", hours=24, next_run_time=now + timedelta(minutes=1), id="purge_audit")
        self.app.metrics.daemon_started(
            full_reconcile_interval=s.full_reconcile_interval, change_poll_interval=s.change_poll_interval
        )
        daemon = self.app.settings.daemon
        self._http = HealthEndpoint(
            daemon.http_host,
            daemon.http_port,  # port 0 picks a free port (tests)
            healthy=self.healthy,
            metrics=lambda: (CONTENT_TYPE_LATEST, generate_latest(self.app.metrics.registry)),
        )
        self._http.start()
        log.info("daemon.http_listening", host=self._http.address[0], port=self._http.address[1])
        self.scheduler.start()
        log.info(
            "daemon.started",
            source=self.app.source.describe(),
            change_poll_s=s.change_poll_interval,
            full_reconcile_s=s.full_reconcile_interval,
        )

    def stop(self) -> None:
        """Stop taking work, let the run in progress finish (bounded), hand over the lead, and leave."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("daemon.stopping")
        self.app.service.stop_event.set()
        self.scheduler.shutdown(wait=False)
        finished = self.idle.wait(SHUTDOWN_GRACE_SECONDS)
        if self.leading:
            self._step_down("STOPPING")  # the standby takes over at its next poll, not when our session times out
        if self._http is not None:
            self._http.stop()
        log.info("daemon.stopped", outcome="clean" if finished else "forced")
        if not finished:
            # A request still waiting on One's read timeout must not keep the process past its grace;
            # the run stays recorded as unfinished and the next start reconciles everything anyway.
            os._exit(0)

    def run_until_signalled(self) -> None:
        stop_requested = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop_requested.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            self.start()
        except OSError as exc:
            port = self.app.settings.daemon.http_port
            raise ConfigError(f"cannot listen on daemon.http_port {port}: {exc.strerror or safe_error_summary(exc)}") from None
        while not stop_requested.wait(0.5):
            pass
        self.stop()
