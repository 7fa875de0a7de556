"""End-to-end runs through faults injected in the mock of One: each converges in three runs, no duplicate, no missed removal."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e.conftest import E2E, ago, record

pytestmark = pytest.mark.e2e

CREATE = "/api/v1/people/*/involvements"
LIST = "/api/v1/involvements"
REMOVE = "/api/v1/involvements/*"

FAULTS: dict[str, dict[str, Any]] = {
    "5xx": {
        "rules": [
            {"method": "POST", "path": CREATE, "status": 503, "code": "MAINTENANCE", "retryAfter": 1, "times": 2},
            {"method": "DELETE", "path": REMOVE, "status": 500, "times": 1},
            {"method": "GET", "path": LIST, "status": 502, "times": 1},
        ]
    },
    "429 with Retry-After": {
        "rules": [{"path": "/api/*", "status": 429, "code": "RATE_LIMITED", "retryAfter": 1, "times": 3}],
    },
    "504 after commit": {
        "rules": [
            {"method": "POST", "path": CREATE, "status": 504, "code": "GATEWAY_TIMEOUT", "afterCommit": True, "times": 2},
            {"method": "DELETE", "path": REMOVE, "status": 504, "code": "GATEWAY_TIMEOUT", "afterCommit": True, "times": 1},
        ]
    },
    "short-lived tokens": {
        "tokenTtlSeconds": 1,
        "rules": [{"path": "/api/*", "latencyMs": 250}],
    },
    "dropped connections": {
        "rules": [
            {"method": "GET", "path": LIST, "dropConnection": True, "times": 1},
            {"method": "POST", "path": CREATE, "dropConnection": True, "times": 2},
            {"method": "DELETE", "path": REMOVE, "dropConnection": True, "times": 1},
        ]
    },
}

BASELINE = [f"PCANFLT{n:02d}" for n in range(10)]
NEW = ["PCANNEW01", "PCANNEW02", "PCANNEW03"]


@pytest.mark.parametrize("name", list(FAULTS))
def test_sync_converges_through_faults(e2e: E2E, name: str) -> None:
    """With faults injected, sync converges within 3 runs: every add made once, the withdrawal removed, nothing pending."""
    e2e.seed_people(*BASELINE, *NEW)
    e2e.add_records(*(record(p) for p in BASELINE))
    e2e.flagsync("sync")
    assert e2e.flagged() == set(BASELINE)
    # Changes: three new consents, one withdrawal (a single removal, below the mass-removal guard), and drift.
    withdrawn = BASELINE[0]
    e2e.add_records(*(record(p) for p in NEW), record(withdrawn, "withdrawn", recorded_at=ago(days=1)))
    [drifted] = [i["id"] for i in e2e.ours() if i["personId"] == BASELINE[1]]
    e2e.remove_by_hand(drifted)

    e2e.faults({"seed": 5, **FAULTS[name]})
    runs = e2e.sync_until_converged()
    fired = e2e.fault_state()
    e2e.clear_faults()

    assert e2e.flagged() == (set(BASELINE) | set(NEW)) - {withdrawn}
    assert all(rule["fired"] > 0 for rule in fired["rules"]), fired
    assert e2e.flagsync("status", "--json").json()["pendingRemovals"] == []
    assert e2e.flagsync("plan", "--json").json()["adds"] == []
    assert len(runs) <= 3
    _assert_the_fault_was_met(name, e2e.journal())


def _assert_the_fault_was_met(name: str, journal: list[dict[str, Any]]) -> None:
    """The journal shows flagsync met the fault the way the contract asks (a new token, the same key again, ...)."""
    if name == "short-lived tokens":
        assert sum(e["path"] == "/connect/token" for e in journal) >= 2
    if name == "504 after commit":
        keys = Counter(e["headers"].get("idempotency-key") for e in journal if e["method"] == "POST" and "/people/" in e["path"])
        assert max(keys.values()) >= 2, "a create answered 504 must be retried with the same Idempotency-Key"
    if name == "dropped connections":
        assert sum(e["dropped"] for e in journal) == 4


def test_token_expiring_mid_run_is_renewed_once(e2e: E2E) -> None:
    """A token One expires while flagsync still trusts it (401 TOKEN_EXPIRED) is replaced, the call retried; the run converges."""
    e2e.seed_people(*NEW)
    e2e.add_records(*(record(p) for p in NEW))
    # The first listing page is held in flight; meanwhile One shortens every token's life, so it arrives with a stale token.
    e2e.faults({"rules": [{"method": "GET", "path": LIST, "latencyMs": 1500, "times": 1}]})
    sync = e2e.start("sync")
    deadline = time.monotonic() + 20
    while not any(e["path"] == LIST for e in e2e.journal()):
        assert time.monotonic() < deadline, "the sync never listed"
        time.sleep(0.05)
    e2e.faults({"tokenTtlSeconds": 1})
    run = e2e.finish(sync)
    e2e.clear_faults()
    assert run.code == 0, run.describe()
    journal = e2e.journal()
    assert [e["status"] for e in journal if e["path"] == LIST][:2] == [401, 200]
    assert sum(e["path"] == "/connect/token" for e in journal) >= 2
    assert e2e.flagged() == set(NEW)


def test_removal_failing_beyond_the_retry_budget_is_kept_and_done_next_run(e2e: E2E) -> None:
    """A removal One refuses past the retry budget exits 3, stays pending in `status`, and is carried out by the next run."""
    e2e.seed_people(*BASELINE)
    e2e.add_records(*(record(p) for p in BASELINE))
    e2e.flagsync("sync")
    withdrawn = BASELINE[0]
    e2e.add_records(record(withdrawn, "withdrawn", recorded_at=ago(days=1)))
    e2e.faults({"rules": [{"method": "DELETE", "path": REMOVE, "status": 500, "times": 4}]})

    failed = e2e.flagsync("sync", "--json", expect=3)
    assert [(f["action"], f["personId"]) for f in failed.json()["failed"]] == [("remove", withdrawn)]
    assert withdrawn in e2e.flagged()
    [pending] = e2e.flagsync("status", "--json").json()["pendingRemovals"]
    assert (pending["held"], pending["person"].startswith("p_")) == (False, True)

    e2e.flagsync("sync")
    assert e2e.flagged() == set(BASELINE) - {withdrawn}
    assert e2e.flagsync("status", "--json").json()["pendingRemovals"] == []


def test_listings_that_lag_behind_writes_make_no_duplicate(e2e: E2E) -> None:
    """When creates and removals reach One's listings late, an immediate second sync makes no duplicate and misses nothing."""
    e2e.seed_people(*BASELINE, *NEW)
    e2e.add_records(*(record(p) for p in BASELINE))
    e2e.flagsync("sync")
    withdrawn = BASELINE[0]
    e2e.add_records(*(record(p) for p in NEW), record(withdrawn, "withdrawn", recorded_at=ago(days=1)))
    e2e.faults({"listingDelaySeconds": 30})
    e2e.flagsync("sync")
    second = e2e.flagsync("sync", "--json")
    e2e.clear_faults()
    assert second.json()["outcome"] == "converged"
    assert sorted(second.json()["plan"]["adds"]) == NEW  # the lag was real: the listing did not show them yet
    assert [r["personId"] for r in second.json()["plan"]["removes"]] == [withdrawn]
    assert e2e.flagged() == (set(BASELINE) | set(NEW)) - {withdrawn}
