"""A one-off `flagsync sync` stopped by SIGINT or SIGTERM mid-apply keeps its audit trail and its record.

Regression test for issue 6: a sync stopped by Ctrl-C after 913 creates left 0 audit events for them and a
run shown as `running` forever; SIGTERM did the same.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import E2E, record

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_apply_records_the_run_and_every_change(e2e: E2E, signum: signal.Signals) -> None:
    """The run ends as interrupted (exit 1), and the audit trail holds an add for every flag One now has."""
    people = [f"P7{n:03d}" for n in range(120)]
    e2e.seed_people(*people)
    e2e.add_records(*(record(p) for p in people))
    e2e.faults({"rules": [{"method": "POST", "path": "/api/v1/people/*/involvements", "latencyMs": 40}]})
    process = e2e.start("sync", "--json")
    deadline = time.monotonic() + 60
    while len(e2e.ours()) < 15 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    run = e2e.finish(process)
    assert run.code == 1, run.describe()
    assert run.json()["outcome"] == "interrupted"
    flagged = e2e.flagged()
    assert 15 <= len(flagged) < len(people)

    status = e2e.flagsync("status", "--json").json()
    assert status["runs"][0]["outcome"] == "interrupted"
    audit = e2e.flagsync("audit", "--format", "json", "--events").json()
    adds = [row for row in audit if row["action"] == "add" and row["outcome"] == "ok"]
    assert len(adds) == len(flagged)

    # The next run finishes the job and audits the rest.
    e2e.clear_faults()
    e2e.flagsync("sync")
    assert e2e.flagged() == set(people)
    audit = e2e.flagsync("audit", "--format", "json", "--events").json()
    assert len([row for row in audit if row["action"] == "add" and row["outcome"] == "ok"]) == len(people)


def test_a_killed_run_shows_as_abandoned_once_its_lock_is_free(e2e: E2E) -> None:
    """After SIGKILL the run has no outcome; `status` shows it abandoned (not running), and the next run marks it so."""
    people = [f"P8{n:03d}" for n in range(60)]
    e2e.seed_people(*people)
    e2e.add_records(*(record(p) for p in people))
    e2e.faults({"rules": [{"method": "POST", "path": "/api/v1/people/*/involvements", "latencyMs": 40}]})
    process = e2e.start("sync")
    deadline = time.monotonic() + 60
    while len(e2e.ours()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    e2e.finish(process)
    assert e2e.flagsync("status", "--json").json()["runs"][0]["outcome"] == "abandoned"
    e2e.clear_faults()
    e2e.flagsync("sync")
    outcomes = [r["outcome"] for r in e2e.flagsync("status", "--json").json()["runs"]]
    assert outcomes[:2] == ["converged", "abandoned"]
