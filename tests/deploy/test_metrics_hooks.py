"""The metrics the alerts need: what each hook sets, read back from the registry."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from flagsync.metrics import Metrics
from flagsync.ports import PendingRemoval


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


@pytest.mark.parametrize(("request_kind", "token", "api"), [("token", 1, 0), ("api", 0, 1)])
def test_refusals_are_counted_by_request_kind(request_kind: str, token: int, api: int) -> None:
    """A refused token request and a refused API call are counted apart (the gateway says which it was)."""
    metrics = Metrics()
    metrics.credentials_refused(request_kind)
    assert value(metrics, "flagsync_one_auth_refusals_total", request="token") == token
    assert value(metrics, "flagsync_one_auth_refusals_total", request="api") == api


def test_refusal_counters_exist_before_the_first_refusal() -> None:
    """Both refusal counters are exported as 0 from the start, so an alert's increase() sees the first refusal."""
    metrics = Metrics()
    assert value(metrics, "flagsync_one_auth_refusals_total", request="token") == 0
    assert value(metrics, "flagsync_one_auth_refusals_total", request="api") == 0


def test_stored_removals_count_pending_and_held_and_date_the_oldest_pending() -> None:
    """The oldest pending (not held) removal dates the gauge; held ones are counted apart; none pending reads 0."""
    metrics = Metrics()
    now = datetime.now(UTC)
    pending = [
        PendingRemoval("i1", "p_0000000000000001", now - timedelta(minutes=5), 3, held=False, key_id="0123abcd"),
        PendingRemoval("i2", "p_0000000000000002", now - timedelta(minutes=50), 1, held=True, key_id="0123abcd"),
        PendingRemoval("i3", "p_0000000000000003", now - timedelta(minutes=20), 9, held=False, key_id="0123abcd"),
    ]
    metrics.removals_stored(pending)
    assert value(metrics, "flagsync_pending_removals") == 2
    assert value(metrics, "flagsync_held_removals") == 1
    assert value(metrics, "flagsync_oldest_pending_removal_timestamp_seconds") == pytest.approx(
        (now - timedelta(minutes=20)).timestamp()
    )
    metrics.removals_stored([pending[1]])
    assert value(metrics, "flagsync_oldest_pending_removal_timestamp_seconds") == 0


def test_daemon_hooks_record_start_intervals_and_successes() -> None:
    """Start time and intervals at start; a full reconcile also counts as catching up with changes; a poll only as that."""
    metrics = Metrics()
    assert value(metrics, "flagsync_last_full_reconcile_ok_timestamp_seconds") == 0
    before = time.time()
    metrics.daemon_started(full_reconcile_interval=3600, change_poll_interval=30)
    assert value(metrics, "flagsync_full_reconcile_interval_seconds") == 3600
    assert value(metrics, "flagsync_change_poll_interval_seconds") == 30
    assert (value(metrics, "flagsync_daemon_start_timestamp_seconds") or 0) >= before
    metrics.change_poll_ok()
    assert value(metrics, "flagsync_last_full_reconcile_ok_timestamp_seconds") == 0
    assert (value(metrics, "flagsync_last_change_poll_timestamp_seconds") or 0) >= before
    metrics.full_reconcile_ok()
    full = value(metrics, "flagsync_last_full_reconcile_ok_timestamp_seconds")
    assert full is not None and full >= before
    assert value(metrics, "flagsync_last_change_poll_timestamp_seconds") == full


def test_quarantined_records_gauge() -> None:
    """The quarantined-records gauge holds the count the last full plan reported."""
    metrics = Metrics()
    metrics.quarantined_records(4)
    assert value(metrics, "flagsync_quarantined_records") == 4
