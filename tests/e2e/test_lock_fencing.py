"""A run whose PostgreSQL advisory lock is lost stops writing: two real processes and pg_terminate_backend.

Regression test for issue 6: when the connection holding the lock dropped, the lock was gone and another
replica could write at the same time, unnoticed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import E2E, record
from tests.postgres import temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def pg_state(e2e: E2E) -> Iterator[str]:
    with temporary_database("flagsync_fence_") as url:
        e2e.state_url_override = url
        e2e.write_config()
        yield url


def _creates(e2e: E2E) -> int:
    return sum(1 for entry in e2e.writes() if entry["method"] == "POST")


def test_a_run_that_loses_its_lock_stops_and_says_so(e2e: E2E, pg_state: str) -> None:
    """Terminating the lock's session stops the run's writes within a second; it exits 1 interrupted; a rerun converges."""
    people = [f"P6{n:03d}" for n in range(150)]
    e2e.seed_people(*people)
    e2e.add_records(*(record(p) for p in people))
    e2e.faults({"rules": [{"method": "POST", "path": "/api/v1/people/*/involvements", "latencyMs": 40}]})
    holder = e2e.start("sync", "--json")
    admin = create_engine(pg_state, isolation_level="AUTOCOMMIT")
    try:
        deadline = time.monotonic() + 60
        while _creates(e2e) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        with admin.connect() as conn:
            pids = (
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE application_name = 'flagsync-run-lock' AND datname = current_database()"
                    )
                )
                .scalars()
                .all()
            )
            assert len(pids) == 1, "exactly one session holds the run lock"
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
        lost_at = _creates(e2e)
        run = e2e.finish(holder, timeout=30)
    finally:
        admin.dispose()
    assert run.code == 1, run.describe()
    doc = run.json()
    assert doc["outcome"] == "interrupted"
    assert "lock was lost" in doc["error"]
    # Fenced: after the lock went, at most the writes in flight and one fence interval's worth went out.
    assert _creates(e2e) - lost_at <= 2 + 0.5 / 0.04 * 2
    assert _creates(e2e) < len(people)
    assert '"event": "sync.lock_lost"' in run.stderr.replace('"event":"', '"event": "')

    e2e.clear_faults()
    e2e.flagsync("sync")
    assert e2e.flagged() == set(people)
