"""End-to-end run of `flagsync daemon`: first reconcile, a withdrawal picked up by the change poll, probes, and SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
import requests

from tests.e2e.conftest import E2E, ago, free_port, record

pytestmark = pytest.mark.e2e

A, B = "PCANDMN01", "PCANDMN02"


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_daemon_reconciles_polls_changes_serves_probes_and_stops_on_sigterm(e2e: E2E) -> None:
    """The daemon flags at start, removes a withdrawal via the change poll within seconds, serves probes, exits 0 on SIGTERM."""
    e2e.seed_people(A, B)
    e2e.add_records(record(A), record(B))
    port = free_port()
    e2e.write_config(http_port=port, change_poll_interval=1)
    daemon = e2e.start("daemon")
    try:
        wait_until(lambda: e2e.flagged() == {A, B}, 20, "the first full reconcile")
        e2e.add_records(record(A, "withdrawn", recorded_at=ago(minutes=5)))
        wait_until(lambda: e2e.flagged() == {B}, 6, "the change poll to remove the withdrawn person's flag")

        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert (health.status_code, health.text) == (200, "ok\n")
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "flagsync_" in metrics.text
        assert not [p for p in e2e.person_ids | e2e.record_ids if p in metrics.text]

        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        run = e2e.finish(daemon, logs_on_stdout=True, timeout=10)
        assert time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert run.code == 0, run.describe()
    assert '"event": "daemon.stopped"' in run.stdout
    triggers = {r["trigger"] for r in e2e.flagsync("status", "--json").json()["runs"]}
    assert {"scheduled_full", "change_poll"} <= triggers


def test_daemon_with_a_bad_configuration_exits_one(e2e: E2E) -> None:
    """A daemon whose configuration has an unknown key refuses to start (exit 1), naming the key but not its value."""
    e2e.config.write_text(e2e.config.read_text().replace("[sync]\n", '[sync]\nmystery_knob = "CANARYVALUE"\n'), encoding="utf-8")
    run = e2e.flagsync("daemon", expect=1)
    assert "mystery_knob" in run.stderr
    assert "CANARYVALUE" not in run.stdout + run.stderr
