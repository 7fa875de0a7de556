"""The daemon's jobs, health endpoint and shutdown, with in-memory fakes behind a real App."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from flagsync import daemon_http
from flagsync.adapters import run_lock
from flagsync.adapters.memory_gateway import InMemoryFlagGateway
from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.state import SqlStateStore
from flagsync.bootstrap import App
from flagsync.core.model import Decision, Flag, Rules, RunOutcome, RunTrigger, SourceItem
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.core.schedule import MIN_FULL_INTERVAL_SECONDS
from flagsync.daemon import Daemon
from flagsync.daemon_http import HealthEndpoint
from flagsync.errors import RetriableRemoteError
from flagsync.metrics import Metrics
from flagsync.service import SyncService
from flagsync.settings import DaemonSettings, Settings, SyncSettings
from tests.core.builders import rec
from tests.fakes import ListSource

NOW = datetime.now(UTC)


Parts = tuple[Daemon, ListSource, InMemoryFlagGateway, SqlStateStore]


def grant(person: str) -> SourceItem:
    return rec(f"r-{person}", person, recorded_at=NOW - timedelta(days=3))


def withdraw(person: str) -> SourceItem:
    return rec(f"w-{person}", person, Decision.WITHDRAWN, informed=None, consented_by=None, recorded_at=NOW - timedelta(days=1))


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = Settings(
        sync=SyncSettings(change_poll_interval=0.2, full_reconcile_interval=3600),
        daemon=DaemonSettings(http_port=0, http_host="127.0.0.1"),
    )
    pseudonymizer = Pseudonymizer(b"daemon-test-key-0123")
    source = ListSource([grant("P1"), grant("P2")])
    one = InMemoryFlagGateway(any_person=True)
    state = SqlStateStore(url, pseudonymizer)
    metrics = Metrics()
    service = SyncService(
        source=source, gateway=one, state=state, rules=Rules(), lock=lambda: RunLock(url, wait_seconds=0), telemetry=metrics
    )
    app = App(
        settings,
        pseudonymizer,
        source,
        one,
        state,
        metrics,
        service,
        lambda: RunLock(url, wait_seconds=0),
        RunLock(url, wait_seconds=0, role="leader"),
    )
    daemon = Daemon(app)
    yield daemon, source, one, state
    if daemon.scheduler.running:
        daemon.scheduler.shutdown(wait=False)
    state.close()


def test_full_reconcile_syncs_and_moves_the_watermark(parts: Parts) -> None:
    """The start-up reconcile flags everyone with consent and stores the source's watermark."""
    daemon, _source, one, state = parts
    daemon.full_reconcile()
    assert sorted(f.person_id for f in one.flags()) == ["P1", "P2"]
    assert state.get_watermark() == "v1"
    assert daemon.last_full_ok is not None


def test_change_poll_syncs_only_changed_people(parts: Parts) -> None:
    """A withdrawal seen by the change poll removes that person's flag without a full listing."""
    daemon, source, one, state = parts
    daemon.full_reconcile()
    source.items.append(withdraw("P1"))
    source.changed = frozenset({"P1"})
    source.version = 2
    one.calls.clear()
    daemon.change_poll()
    assert [f.person_id for f in one.flags()] == ["P2"]
    assert "list_flags" not in one.calls
    assert state.get_watermark() == "v2"
    assert state.recent_runs(1)[0].trigger is RunTrigger.CHANGE_POLL


def test_change_poll_without_changes_does_nothing(parts: Parts) -> None:
    """No changed people: no run, no call to One."""
    daemon, _source, one, state = parts
    daemon.full_reconcile()
    runs = len(state.recent_runs())
    one.calls.clear()
    daemon.change_poll()
    assert not one.calls
    assert len(state.recent_runs()) == runs


def test_unknown_changes_escalate_to_a_full_reconcile(parts: Parts) -> None:
    """A source that cannot tell who changed (rows deleted) gets a full reconcile, once the last one is long enough ago."""
    daemon, source, one, state = parts
    daemon.full_reconcile()
    source.changed = None
    source.version = 2
    runs = len(state.recent_runs())
    one.calls.clear()
    daemon.change_poll()  # the start-up reconcile has just ended: the full one waits, and so does the watermark
    assert len(state.recent_runs()) == runs and not one.calls
    assert state.get_watermark() == "v1"
    assert daemon.last_full_ended is not None
    daemon.last_full_ended -= MIN_FULL_INTERVAL_SECONDS
    daemon.change_poll()
    assert len(state.recent_runs()) == runs + 1
    assert state.recent_runs(1)[0].trigger is RunTrigger.SCHEDULED_FULL
    assert one.calls["list_flags"] == 1
    assert state.get_watermark() == "v2"


def test_pending_removal_is_retried_by_a_full_reconcile_when_one_is_due(parts: Parts) -> None:
    """A removal One failed to confirm is retried by the first poll at least MIN_FULL_INTERVAL_SECONDS after the last full run."""
    daemon, source, one, state = parts
    daemon.full_reconcile()
    source.items.append(withdraw("P1"))
    source.changed = frozenset({"P1"})
    one.fail_next(1, RetriableRemoteError("down", status=503, code="UPSTREAM_UNAVAILABLE"), operation="remove_flag")
    daemon.change_poll()
    assert len(state.pending_removals()) == 1
    source.changed = frozenset()
    one.calls.clear()
    daemon.change_poll()  # a full reconcile ran moments ago: this poll takes the fast path (nobody changed)
    assert "list_flags" not in one.calls
    assert len(state.pending_removals()) == 1
    assert daemon.last_full_ended is not None
    daemon.last_full_ended -= MIN_FULL_INTERVAL_SECONDS
    daemon.change_poll()
    assert one.calls["list_flags"] == 1
    assert state.pending_removals() == []
    assert [f.person_id for f in one.flags()] == ["P2"]


def test_a_withdrawal_is_honoured_fast_while_a_removal_is_pending(parts: Parts) -> None:
    """With a removal pending and no full reconcile due yet, a poll still syncs the person who just withdrew."""
    daemon, source, one, state = parts
    daemon.full_reconcile()
    source.items.append(withdraw("P1"))
    source.changed = frozenset({"P1"})
    one.fail_next(1, RetriableRemoteError("down", status=503, code="UPSTREAM_UNAVAILABLE"), operation="remove_flag")
    daemon.change_poll()
    assert len(state.pending_removals()) == 1
    source.items.append(withdraw("P2"))
    source.changed = frozenset({"P1", "P2"})
    one.calls.clear()
    daemon.change_poll()
    assert "list_flags" not in one.calls
    assert one.flags() == []
    assert state.pending_removals() == []  # P1's removal was confirmed in this person-scoped run


def test_failed_change_poll_keeps_the_watermark(parts: Parts) -> None:
    """When a change-poll run fails the watermark stays, so the same people are synced again."""
    daemon, source, one, state = parts
    daemon.full_reconcile()
    source.items.append(grant("P3"))
    source.changed = frozenset({"P3"})
    source.version = 2
    one.fail_next(1, RetriableRemoteError("down", status=503, code="UPSTREAM_UNAVAILABLE"), operation="create_flag")
    daemon.change_poll()
    assert state.get_watermark() == "v1"
    daemon.change_poll()
    assert state.get_watermark() == "v2"
    assert sorted(f.person_id for f in one.flags()) == ["P1", "P2", "P3"]


def test_health_and_metrics_endpoints(parts: Parts) -> None:
    """/healthz is 200 while scheduled and reconciled, 503 once stopping; /metrics has no person id."""
    daemon, _source, _one, _state = parts
    daemon.start()
    assert daemon._http is not None
    base = f"http://127.0.0.1:{daemon._http.address[1]}"
    _wait_for_first_reconcile(daemon)
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    metrics = requests.get(f"{base}/metrics", timeout=5).text
    assert 'flagsync_runs_total{outcome="converged",trigger="scheduled_full"} 1.0' in metrics
    assert "flagsync_flags_in_one" in metrics
    assert "P1" not in metrics and "P2" not in metrics
    daemon.stopping.set()
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 503
    daemon.stopping.clear()
    daemon.stop()


def test_idle_connections_cannot_pile_up_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half-sent requests hold at most the connection cap in threads, are cut off by the read timeout; health answers."""
    monkeypatch.setattr(daemon_http, "HTTP_READ_TIMEOUT_SECONDS", 0.5)
    endpoint = HealthEndpoint("127.0.0.1", 0, healthy=lambda: True, metrics=lambda: ("text/plain", b""))
    endpoint.start()
    address = endpoint.address
    baseline = threading.active_count()
    idle = []
    try:
        for _ in range(200):
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            idle.append(sock)
        time.sleep(0.2)
        assert threading.active_count() - baseline <= daemon_http.HTTP_MAX_CONNECTIONS + 2
        time.sleep(1.0)  # past the read timeout: the server has let go of every idle connection
        assert threading.active_count() - baseline <= 2
        assert requests.get(f"http://{address[0]}:{address[1]}/healthz", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        endpoint.stop()


def test_the_http_endpoint_binds_the_configured_host(parts: Parts) -> None:
    """The health/metrics server listens where daemon.http_host says (loopback by default), nowhere else."""
    daemon, _source, _one, _state = parts
    daemon.start()
    assert daemon._http is not None
    try:
        assert daemon._http.address[0] == "127.0.0.1"
    finally:
        daemon.stop()


# --------------------------------------------------------------------------------------------
# Leadership: one active replica, the other standing by


def _second_daemon(first: Daemon, tmp_path: Path) -> tuple[Daemon, InMemoryFlagGateway]:
    """Another replica on the same state store (and the same source), with a One of its own to see its writes."""
    app = first.app
    url = f"sqlite:///{tmp_path / 'state.db'}"
    one = InMemoryFlagGateway(any_person=True)
    service = SyncService(
        source=app.source, gateway=one, state=app.state, rules=Rules(), lock=lambda: RunLock(url, wait_seconds=0)
    )
    other = App(
        app.settings, app.pseudonymizer, app.source, one, app.state, Metrics(), service,
        lambda: RunLock(url, wait_seconds=0), RunLock(url, wait_seconds=0, role="leader"),
    )  # fmt: skip
    return Daemon(other), one


def test_one_replica_leads_and_the_other_stands_by_healthy(parts: Parts, tmp_path: Path) -> None:
    """While one daemon leads, a second one makes no run and stays healthy; it takes over when the first steps down."""
    leader, _source, _one, state = parts
    leader.change_poll()  # takes the lead, with a full reconcile
    assert leader.leading
    standby, standby_one = _second_daemon(leader, tmp_path)
    standby.scheduler.start(paused=True)
    runs = len(state.recent_runs())
    standby.change_poll()
    standby.full_reconcile()
    assert not standby.leading
    assert len(state.recent_runs()) == runs
    assert not standby_one.calls
    standby.last_full_ok = None
    standby.started_at -= 10 * 3600  # long past 2 x the full reconcile interval: a standby is still healthy
    assert standby.healthy()

    leader.scheduler.start(paused=True)
    leader.stop()  # hands over the lead
    standby.change_poll()
    assert standby.leading
    assert state.recent_runs(1)[0].trigger is RunTrigger.SCHEDULED_FULL  # a new leader starts with a full reconcile
    assert standby_one.calls["list_flags"] == 1
    standby.stop()


def test_a_leader_that_loses_its_lock_steps_down(parts: Parts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """When the leader lock is no longer held (its file went), the daemon stops leading and makes no run."""
    monkeypatch.setattr(run_lock, "FENCE_INTERVAL_SECONDS", 0.0)
    daemon, _source, one, state = parts
    daemon.change_poll()
    assert daemon.leading
    (tmp_path / "state.db.leader.lock").unlink()
    runs = len(state.recent_runs())
    one.calls.clear()
    daemon.change_poll()
    assert not daemon.leading
    assert len(state.recent_runs()) == runs
    assert not one.calls


def test_stale_reconcile_is_unhealthy(parts: Parts) -> None:
    """A leader without a successful full reconcile for twice its interval turns /healthz unhealthy."""
    daemon, _source, _one, _state = parts
    daemon.scheduler.start(paused=True)
    daemon.change_poll()
    assert daemon.leading
    daemon.last_full_ok = daemon.started_at - 3 * 3600
    assert not daemon.healthy()
    daemon.last_full_ok = daemon.started_at
    assert daemon.healthy()


def test_stop_records_nothing_new_and_returns_quickly(parts: Parts) -> None:
    """Stopping an idle daemon takes no grace time and a stopped daemon starts no run."""
    daemon, _source, _one, state = parts
    daemon.start()
    _wait_for_first_reconcile(daemon)
    started = time.monotonic()
    daemon.stop()
    assert time.monotonic() - started < 5  # an idle daemon needs none of its 8 s grace
    runs = len(state.recent_runs())
    daemon.full_reconcile()
    assert len(state.recent_runs()) == runs
    assert state.recent_runs(1)[0].outcome is RunOutcome.CONVERGED


def test_poll_ticks_skipped_during_a_long_run_are_not_warned_about(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run longer than the poll interval makes APScheduler skip ticks, by design: no warning for each, others pass."""
    daemon, _source, one, _state = parts
    listed = one.list_flags

    def slow_list_flags(*, cancel: threading.Event | None = None) -> list[Flag]:
        time.sleep(1.2)  # six 0.2 s poll intervals
        return listed(cancel=cancel)

    monkeypatch.setattr(one, "list_flags", slow_list_flags)
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    scheduler_log.addHandler(handler)
    try:
        daemon.start()
        _wait_for_first_reconcile(daemon)
        daemon.stop()
        scheduler_log.warning("another scheduler warning")
    finally:
        scheduler_log.removeHandler(handler)
    assert seen == ["another scheduler warning"]


def _wait_for_first_reconcile(daemon: Daemon) -> None:
    deadline = time.monotonic() + 10
    while daemon.last_full_ok is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert daemon.last_full_ok is not None, "the start-up reconcile did not finish"
