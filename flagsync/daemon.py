"""The scheduled worker: a change poll, a full reconcile and an audit purge, plus /healthz and /metrics.

Jobs run on a one-thread executor, so they never overlap inside the process; the run lock keeps
them apart from an operator's one-off run (the daemon does not wait for it: it skips that cycle).
APScheduler's default misfire grace of 1 s would silently drop late runs, so it is disabled: a late
job still runs, and coalescing folds a backlog into one run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flagsync.bootstrap import App
from flagsync.errors import ConfigError, FlagsyncError, RunInProgressError
from flagsync.logs import safe_error_summary
from flagsync.ports import RunOutcome, RunTrigger
from flagsync.service import PERSON_SCOPE_LIMIT, RunReport

log = structlog.get_logger("flagsync.daemon")

#: How long SIGTERM waits for a run in progress before the process leaves anyway (spec: exit within 10 s).
SHUTDOWN_GRACE_SECONDS = 8.0

#: How long a client of /healthz or /metrics may take to send its request before the connection is closed.
HTTP_READ_TIMEOUT_SECONDS = 5.0

#: Connections served at once; more are closed at once (each served connection holds a thread).
HTTP_MAX_CONNECTIONS = 16

#: Outcomes that mean the run read both sides and planned: the daemon is doing its job.
_HEALTHY = frozenset({RunOutcome.CONVERGED, RunOutcome.CHANGES_FAILED, RunOutcome.HELD})


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most `max_connections` connections at once and drops the rest.

    The standard library's threading server starts a thread for every connection, idle or not: a
    thousand half-sent requests held a thousand threads. Together with the handler's read timeout,
    this bounds what a client that connects and says nothing can cost.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, max_connections: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: refuse this one rather than queue a thread for it
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Daemon:
    """Owns the scheduler, the health/metrics endpoint and the shutdown sequence."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings.sync
        self.started_at = time.monotonic()
        self.last_full_ok: float | None = None
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": SchedulerThreadPool(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._http: ThreadingHTTPServer | None = None

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
        """List everything, repair drift, retry pending removals; then move the change watermark on."""
        try:
            watermark = self.app.source.changes_since(None).watermark
        except FlagsyncError as exc:
            log.error("source.watermark_failed", error_type=type(exc).__name__, error=str(exc))
            watermark = None
        report = self._run(RunTrigger.SCHEDULED_FULL, None)
        if report is not None and report.outcome in _HEALTHY:
            self.last_full_ok = time.monotonic()
            self.app.metrics.full_reconcile_ok()
            if watermark is not None:
                self.app.state.set_watermark(watermark)

    def change_poll(self) -> None:
        """Sync just the people whose records changed; escalate to a full reconcile when needed."""
        pending = self.app.state.pending_removals()
        self.app.metrics.removals_stored(pending)  # every replica's gauges follow the shared state store, run or not
        if any(not p.held for p in pending):
            # Removal is a duty: a pending removal is retried every cycle, with fresh consent.
            self.full_reconcile()
            return
        try:
            changes = self.app.source.changes_since(self.app.state.get_watermark())
        except FlagsyncError as exc:
            log.error("source.changes_failed", error_type=type(exc).__name__, error=str(exc))
            return
        if changes.person_ids is None or len(changes.person_ids) > PERSON_SCOPE_LIMIT:
            self.full_reconcile()
            return
        if not changes.person_ids:
            self.app.metrics.change_poll_ok()
            return
        report = self._run(RunTrigger.CHANGE_POLL, changes.person_ids)
        if report is not None and report.outcome in (RunOutcome.CONVERGED, RunOutcome.HELD):
            self.app.state.set_watermark(changes.watermark)
            self.app.metrics.change_poll_ok()

    def purge_audit(self) -> None:
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
        """The scheduler is alive and a full reconcile succeeded within twice its interval."""
        if not self.scheduler.running or self.stopping.is_set():
            return False
        window = 2 * self.settings.full_reconcile_interval
        since = self.last_full_ok if self.last_full_ok is not None else self.started_at
        return time.monotonic() - since <= window

    def _serve_http(self) -> None:
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            timeout = HTTP_READ_TIMEOUT_SECONDS  # applied to the connection's socket before the request is read

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    ok = daemon.healthy()
                    body = b"ok\n" if ok else b"unhealthy\n"
                    self._send(200 if ok else 503, "text/plain; charset=utf-8", body)
                elif self.path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(daemon.app.metrics.registry))
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes every few seconds would flood the logs; they are visible in /metrics instead."""

        host = self.app.settings.daemon.http_host
        port = self.app.settings.daemon.http_port
        self._http = _BoundedHTTPServer((host, port), Handler, max_connections=HTTP_MAX_CONNECTIONS)
        threading.Thread(target=self._http.serve_forever, name="flagsync-http", daemon=True).start()
        log.info("daemon.http_listening", host=host, port=self._http.server_address[1])

    # ------------------------------------------------------------------------------------------
    # Life cycle

    def start(self) -> None:
        s = self.settings
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self.full_reconcile, "interval", seconds=s.full_reconcile_interval, next_run_time=now, id="full_reconcile"
        )
        self.scheduler.add_job(
            self.change_poll,
            "interval",
            seconds=s.change_poll_interval,
            next_run_time=now + timedelta(seconds=s.change_poll_interval),
            id="change_poll",
        )
        self.scheduler.add_job(self.purge_audit, "interval", hours=24, next_run_time=now + timedelta(minutes=1), id="purge_audit")
        self.app.metrics.daemon_started(
            full_reconcile_interval=s.full_reconcile_interval, change_poll_interval=s.change_poll_interval
        )
        self._serve_http()  # port 0 picks a free port (tests)
        self.scheduler.start()
        log.info(
            "daemon.started",
            source=self.app.source.describe(),
            change_poll_s=s.change_poll_interval,
            full_reconcile_s=s.full_reconcile_interval,
        )

    def stop(self) -> None:
        """Stop taking work, let the run in progress finish (bounded), and leave."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("daemon.stopping")
        self.app.service.stop_event.set()
        self.scheduler.shutdown(wait=False)
        finished = self.idle.wait(SHUTDOWN_GRACE_SECONDS)
        if self._http is not None:
            self._http.shutdown()
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
