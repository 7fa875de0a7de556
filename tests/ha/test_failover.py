"""Two replicas on one PostgreSQL state store: one leads, the other stands by and takes over a killed leader's work in seconds."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
import requests

from flagsync.adapters.run_lock import RunLock
from tests.e2e.conftest import ago, record
from tests.ha.conftest import Cluster, Replica, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

PEOPLE = [f"PHA{n:05d}" for n in range(1, 13)]
#: From the moment the survivor may take over (the active replica is gone and the withdrawal is recorded) to the
#: flag gone from One. Change poll 0.5 s; a full reconcile of 12 people takes well under a second here.
FAILOVER_BOUND_S = 10.0
#: Each create stalls this long in the mock while the first replica runs, so that it is killed mid-run.
SLOW_CREATE_MS = 400


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_windows(replica: Replica) -> list[tuple[datetime, datetime, str]]:
    """(start, end, run id) of every run the replica began; a run cut short by SIGKILL ends at the kill."""
    started: dict[str, datetime] = {}
    ended: dict[str, datetime] = {}
    for event in replica.events():
        if event["event"] == "sync.started":
            started[event["run_id"]] = parse_time(event["timestamp"])
        elif event["event"] == "sync.completed":
            ended[event["run_id"]] = parse_time(event["timestamp"])
    windows = []
    for run_id, start in started.items():
        end = ended.get(run_id) or replica.killed_at
        assert end is not None, f"replica {replica.name}'s run {run_id} never ended"
        windows.append((start, end, run_id))
    return sorted(windows)


def writes(replica: Replica) -> list[dict[str, Any]]:
    return [e for e in replica.events() if e["event"] in ("flag.added", "flag.removed")]


def assert_never_both_running(a: Replica, b: Replica) -> None:
    """No run of one replica overlaps a run of the other (and every write lies inside its replica's runs)."""
    for replica in (a, b):
        windows = run_windows(replica)
        for write in writes(replica):
            at = parse_time(write["timestamp"])
            assert any(start <= at <= end for start, end, _ in windows), f"{replica.name} wrote outside a run: {write}"
    overlapping = [(wa, wb) for wa in run_windows(a) for wb in run_windows(b) if wa[0] < wb[1] and wb[0] < wa[1]]
    assert not overlapping, f"runs of both replicas at once: {overlapping}"


def test_the_standby_takes_over_a_killed_replicas_run_and_honours_a_withdrawal(cluster: Cluster) -> None:
    """A leads and is SIGKILLed mid-run; B, standing by until then, takes the lead, finishes the work, honours a withdrawal."""
    world = cluster.world
    world.seed_people(*PEOPLE)
    world.add_records(*(record(p) for p in PEOPLE))
    world.faults({"rules": [{"method": "POST", "path": "/api/v1/people/*/involvements", "latencyMs": SLOW_CREATE_MS}]})
    a, b = cluster.configure("a"), cluster.configure("b")

    cluster.start("a")
    wait_until(lambda: cluster.leader() == "a" and cluster.lock_holder() == "a", 20, "replica a to lead and start a run")
    cluster.start("b")
    wait_until(lambda: len(world.flagged()) >= 3, 20, "replica a to create some flags")
    assert b.health() == requests.codes.ok  # standing by, healthy
    assert cluster.leader() == "a"
    assert cluster.lock_holder() == "a"
    assert len(world.flagged()) < len(PEOPLE), "replica a finished before it could be killed mid-run"
    cluster.kill("a")
    flagged_by_a = world.flagged()

    world.clear_faults()
    withdrawn = sorted(flagged_by_a)[0]
    world.add_records(record(withdrawn, "withdrawn", recorded_at=ago(minutes=1)))
    took = wait_until(lambda: world.flagged() == set(PEOPLE) - {withdrawn}, FAILOVER_BOUND_S, "replica b to take over")
    print(f"failover: B converged and removed the withdrawn flag {took:.2f} s after A was killed (bound {FAILOVER_BOUND_S} s)")
    assert cluster.leader() == "b"
    cluster.stop("b")

    assert b.run is not None and b.run.code == 0, b.run.describe() if b.run else ""
    assert a.killed_at is not None
    standby = [e for e in b.events() if e["event"] == "daemon.standby"]
    leading = [e for e in b.events() if e["event"] == "daemon.leading"]
    assert standby and parse_time(standby[0]["timestamp"]) < a.killed_at, "replica b never stood by"
    assert leading and parse_time(leading[0]["timestamp"]) > a.killed_at, "replica b led before a was gone"
    assert not [e for e in b.events() if e["event"] == "sync.started" and parse_time(e["timestamp"]) < a.killed_at]
    assert not [w for w in writes(b) if parse_time(w["timestamp"]) < a.killed_at], "replica b wrote while a led"
    assert writes(a), "replica a wrote nothing before it was killed"
    removed_by_b = [w for w in writes(b) if w["event"] == "flag.removed"]
    assert len(removed_by_b) == 1
    assert_never_both_running(a, b)


def test_both_replicas_alive_only_the_leader_writes(cluster: Cluster) -> None:
    """With both replicas polling every 0.5 s for a stream of withdrawals, one does every run and write, none is missed."""
    world = cluster.world
    world.seed_people(*PEOPLE)
    world.add_records(*(record(p) for p in PEOPLE))
    a, b = cluster.configure("a"), cluster.configure("b")
    cluster.start("a")
    cluster.start("b")
    wait_until(lambda: world.flagged() == set(PEOPLE), 30, "the first full reconcile")
    remaining = set(PEOPLE)
    for n, person in enumerate(PEOPLE[:8]):
        world.add_records(record(person, "withdrawn", recorded_at=ago(minutes=1)))
        remaining.discard(person)
        wait_until(lambda: world.flagged() == remaining, 10, f"the withdrawal of {person}")
        time.sleep(0.07 * n)  # withdrawals at varying phases of the two replicas' polls
    leader = cluster.leader()
    assert leader in ("a", "b")
    follower = "b" if leader == "a" else "a"
    cluster.stop(follower)  # the standby first: stopping the leader would hand it the lead
    cluster.stop(leader)
    assert_never_both_running(a, b)
    removals = {r.name: len([w for w in writes(r) if w["event"] == "flag.removed"]) for r in (a, b)}
    assert removals == {leader: 8, follower: 0}, removals
    standby = cluster.replicas[follower]
    assert not [e for e in standby.events() if e["event"] == "sync.started"], "the standby ran"


def test_a_standby_stays_healthy(cluster: Cluster) -> None:
    """While another replica leads (here: the test holds the leader lock), the standby stays healthy past 2 x the interval."""
    cluster.world.seed_people(*PEOPLE[:2])
    cluster.world.add_records(*(record(p) for p in PEOPLE[:2]))
    standby = cluster.configure("b", full_reconcile_interval=1)
    other_replica = RunLock(cluster.state_url("a"), wait_seconds=0, role="leader")
    other_replica.acquire()
    try:
        cluster.start("b")
        time.sleep(3.5)  # past 2 x full_reconcile_interval, every full reconcile skipped
        status = standby.health()
    finally:
        other_replica.release()
        cluster.stop("b")
    assert status == requests.codes.ok, f"/healthz answered {status}"
