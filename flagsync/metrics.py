"""Prometheus metrics for the daemon: runs, changes, flags in One, pending work, One's latency.

Labels are outcomes, actions, methods, endpoint templates and statuses only: never a person id.
deploy/prometheus/alerts.yaml and deploy/grafana/flagsync.json use these names (tests/deploy checks them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flagsync.core.model import RunOutcome, RunTrigger
from flagsync.ports import PendingRemoval


class Metrics:
    """Every flagsync metric, in a registry of its own (so tests and several instances never clash)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter("flagsync_runs", "Sync runs by trigger and outcome.", ["trigger", "outcome"], registry=r)
        self.changes = Counter("flagsync_changes", "Flag writes by action and outcome.", ["action", "outcome"], registry=r)
        self._change_children: dict[tuple[str, str], Any] = {}
        self.flags = Gauge("flagsync_flags_in_one", "Flags of ours One listed at the last full listing.", registry=r)
        self.pending = Gauge("flagsync_pending_removals", "Removals not yet confirmed by One.", registry=r)
        self.held = Gauge("flagsync_held_removals", "Removals held by the mass-removal guard.", registry=r)
        self.last_success = Gauge(
            "flagsync_last_success_timestamp_seconds", "When the last run that converged finished.", ["trigger"], registry=r
        )
        self.run_duration = Histogram(
            "flagsync_run_duration_seconds",
            "How long runs took.",
            ["trigger"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
            registry=r,
        )
        self.request_latency = Histogram(
            "flagsync_one_request_duration_seconds",
            "Requests to One by method, endpoint template and status.",
            ["method", "endpoint", "status"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.retries = Counter("flagsync_one_retries", "Retries of requests to One.", ["endpoint", "reason"], registry=r)
        self.auth_refusals = Counter(
            "flagsync_one_auth_refusals",
            "Answers refusing our credentials (token request: 400/401) or our token (API request: 401).",
            ["request"],
            registry=r,
        )
        for request in ("token", "api"):
            self.auth_refusals.labels(request=request)  # exported as 0 from the start, so increase() sees the first one
        self.oldest_pending = Gauge(
            "flagsync_oldest_pending_removal_timestamp_seconds",
            "When the oldest pending (not held) removal was first due; 0 when none is pending.",
            registry=r,
        )
        self.quarantined = Gauge(
            "flagsync_quarantined_records", "Consent records quarantined at the last full reconcile.", registry=r
        )
        self.leader = Gauge(
            "flagsync_leader", "1 while this daemon is the active replica (holds the leader lock), else 0.", registry=r
        )
        self.daemon_start = Gauge("flagsync_daemon_start_timestamp_seconds", "When this daemon process started.", registry=r)
        self.full_interval = Gauge(
            "flagsync_full_reconcile_interval_seconds", "The daemon's sync.full_reconcile_interval.", registry=r
        )
        self.poll_interval = Gauge("flagsync_change_poll_interval_seconds", "The daemon's sync.change_poll_interval.", registry=r)
        self.last_full_ok = Gauge(
            "flagsync_last_full_reconcile_ok_timestamp_seconds",
            "When this daemon last finished a full reconcile that read both sides and planned (what /healthz counts); 0: never.",
            registry=r,
        )
        self.last_change_poll = Gauge(
            "flagsync_last_change_poll_timestamp_seconds",
            "When this daemon last caught up with changed records (a change poll, or a full reconcile that succeeded); 0: never.",
            registry=r,
        )

    # Telemetry (flagsync.ports)

    def run_finished(self, outcome: RunOutcome, trigger: RunTrigger, duration_s: float) -> None:
        self.runs.labels(trigger=trigger.value, outcome=outcome.value).inc()
        self.run_duration.labels(trigger=trigger.value).observe(duration_s)
        if outcome is RunOutcome.CONVERGED:
            self.last_success.labels(trigger=trigger.value).set(time.time())

    def change_applied(self, action: str, outcome: str) -> None:
        child = self._change_children.get((action, outcome))
        if child is None:  # labels() takes a lock and builds a key every call: look each pair up once
            child = self._change_children[(action, outcome)] = self.changes.labels(action=action, outcome=outcome)
        child.inc()

    def flags_in_one(self, count: int) -> None:
        self.flags.set(count)

    def removals_stored(self, pending: Sequence[PendingRemoval]) -> None:
        waiting = [p for p in pending if not p.held]
        self.pending.set(len(waiting))
        self.held.set(len(pending) - len(waiting))
        oldest = min((p.since for p in waiting), default=None)
        self.oldest_pending.set(oldest.timestamp() if oldest is not None else 0)

    def quarantined_records(self, count: int) -> None:
        self.quarantined.set(count)

    # Daemon hooks

    def daemon_started(self, *, full_reconcile_interval: float, change_poll_interval: float) -> None:
        self.daemon_start.set(time.time())
        self.full_interval.set(full_reconcile_interval)
        self.poll_interval.set(change_poll_interval)

    def full_reconcile_ok(self) -> None:
        now = time.time()
        self.last_full_ok.set(now)
        self.last_change_poll.set(now)  # a full reconcile covers every change

    def change_poll_ok(self) -> None:
        self.last_change_poll.set(time.time())

    def request_done(self, method: str, endpoint: str, status: int | None, seconds: float) -> None:
        self.request_latency.labels(method=method, endpoint=endpoint, status=str(status) if status else "none").observe(seconds)

    def retry_scheduled(self, endpoint: str, reason: str) -> None:
        self.retries.labels(endpoint=endpoint, reason=reason).inc()

    def credentials_refused(self, request: str) -> None:
        self.auth_refusals.labels(request=request).inc()
