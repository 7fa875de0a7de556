"""Prometheus metrics for the daemon: runs, changes, flags in One, pending work, One's latency.

Labels are outcomes, actions, methods, endpoint templates and statuses only: never a person id.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flagsync.ports import RunOutcome, RunTrigger
from flagsync.service import RunObserver


class Metrics(RunObserver):
    """Every flagsync metric, in a registry of its own (so tests and several instances never clash)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter("flagsync_runs", "Sync runs by trigger and outcome.", ["trigger", "outcome"], registry=r)
        self.changes = Counter("flagsync_changes", "Flag writes by action and outcome.", ["action", "outcome"], registry=r)
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

    # RunObserver

    def run_finished(self, outcome: RunOutcome, trigger: RunTrigger, duration_s: float) -> None:
        self.runs.labels(trigger=trigger.value, outcome=outcome.value).inc()
        self.run_duration.labels(trigger=trigger.value).observe(duration_s)
        if outcome is RunOutcome.CONVERGED:
            self.last_success.labels(trigger=trigger.value).set(time.time())

    def change_applied(self, action: str, outcome: str) -> None:
        self.changes.labels(action=action, outcome=outcome).inc()

    def flags_in_one(self, count: int) -> None:
        self.flags.set(count)

    def pending_changed(self, pending: int, held: int) -> None:
        self.pending.set(pending)
        self.held.set(held)

    # Gateway hooks

    def on_request(self, method: str, endpoint: str, status: int | None, seconds: float) -> None:
        self.request_latency.labels(method=method, endpoint=endpoint, status=str(status) if status else "none").observe(seconds)

    def on_retry(self, endpoint: str, reason: str) -> None:
        self.retries.labels(endpoint=endpoint, reason=reason).inc()
