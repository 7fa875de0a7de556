"""The daemon's jobs, health endpoint and shutdown, with in-memory fakes behind a real App."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from flagsync import daemon as daemon_module
from flagsync.adapters.memory_gateway import InMemoryFlagGateway
from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.state import SqlStateStore
from flagsync.bootstrap import App
from flagsync.core.model import Decision, Rules, SourceItem
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.daemon import Daemon
from flagsync.errors import RetriableRemoteError
from flagsync.metrics import Metrics
from flagsync.ports import Changes, RunOutcome, RunTrigger
from flagsync.service import SyncService
from flagsync.settings import DaemonSettings, Settings, SyncSettings
from tests.core.builders import rec

NOW = datetime.now(UTC)


class PollingSource:
    """A list source whose `changes_since` reports what the test says changed."""

    def __init__(self, items: list[SourceItem]) -> None:
        self.items = items
        self.changed: frozenset[str] | None = frozenset()
        self.version = 1
        self.watermarks_seen: list[str | None] = []

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        return iter(list(self.items))

    def read_person(self, person_id: str, now: datetime) -> Iterator[SourceItem]:
        return iter([i for i in self.items if i.person_id == person_id])

    def changes_since(self, watermark: str | None) -> Changes:
        self.watermarks_seen.append(watermark)
        if watermark is None:
            return Changes(None, f"v{self.version}")
        return Changes(self.changed, f"v{self.version}")

    def describe(self) -> str:
        return "polling list"


Parts = tuple[Daemon, PollingSource, InMemoryFlagGateway, SqlStateStore]


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
    source = PollingSource([grant("P1"), grant("P2")])
    one = InMemoryFlagGateway(any_person=True)
    state = SqlStateStore(url, pseudonymizer)
    metrics = Metrics()
    service = SyncService(
        source=source, gateway=one, state=state, rules=Rules(), lock=lambda: RunLock(url, wait_seconds=0), observer=metrics
    )
    app = App(settings, pseudonymizer, source, one, state, metrics, service, lambda: RunLock(url, wait_seconds=0))
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
    """A source that cannot say who changed (a new CSV) gets a full reconcile."""
    daemon, source, _one, state = parts
    daemon.full_reconcile()
    source.changed = None
    daemon.change_poll()
    assert state.recent_runs(1)[0].trigger is RunTrigger.SCHEDULED_FULL


def test_pending_removal_is_retried_on_the_next_poll(parts: Parts) -> None:
    """A removal One failed to confirm is retried at the very next cycle, not an hour later."""
    daemon, source, one, state = parts
    daemon.full_reconcile()
    source.items.append(withdraw("P1"))
    source.changed = frozenset({"P1"})
    one.fail_next(1, RetriableRemoteError("down", status=503, code="UPSTREAM_UNAVAILABLE"), operation="remove_flag")
    daemon.change_poll()
    assert len(state.pending_removals()) == 1
    source.changed = frozenset()
    daemon.change_poll()
    assert state.pending_removals() == []
    assert [f.person_id for f in one.flags()] == ["P2"]


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
    base = f"http://127.0.0.1:{daemon._http.server_address[1]}"
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


def test_idle_connections_cannot_pile_up_threads(parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half-sent requests hold at most the connection cap in threads, are cut off by the read timeout; health answers."""
    monkeypatch.setattr(daemon_module, "HTTP_READ_TIMEOUT_SECONDS", 0.5)
    daemon, _source, _one, _state = parts
    daemon._serve_http()
    assert daemon._http is not None
    address = ("127.0.0.1", daemon._http.server_address[1])
    baseline = threading.active_count()
    idle = []
    try:
        for _ in range(200):
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            idle.append(sock)
        time.sleep(0.2)
        assert threading.active_count() - baseline <= daemon_module.HTTP_MAX_CONNECTIONS + 2
        time.sleep(1.0)  # past the read timeout: the server has let go of every idle connection
        assert threading.active_count() - baseline <= 2
        assert requests.get(f"http://{address[0]}:{address[1]}/healthz", timeout=5).status_code in (200, 503)
    finally:
        for sock in idle:
            sock.close()
        daemon._http.shutdown()


def test_the_http_endpoint_binds_the_configured_host(parts: Parts) -> None:
    """The health/metrics server listens where daemon.http_host says (loopback by default), nowhere else."""
    daemon, _source, _one, _state = parts
    daemon._serve_http()
    assert daemon._http is not None
    try:
        assert daemon._http.server_address[0] == "127.0.0.1"
    finally:
        daemon._http.shutdown()


def test_stale_reconcile_is_unhealthy(parts: Parts) -> None:
    """No successful full reconcile for twice its interval turns /healthz unhealthy."""
    daemon, _source, _one, _state = parts
    daemon.scheduler.start(paused=True)
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


def _wait_for_first_reconcile(daemon: Daemon) -> None:
    deadline = time.monotonic() + 10
    while daemon.last_full_ok is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert daemon.last_full_ok is not None, "the start-up reconcile did not finish"
