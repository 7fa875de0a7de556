"""Tests of the mock's injected faults: statuses, counts, probabilities, after-commit, latency, drops and rate limits."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.mock.conftest import Api, InProcess, error_of, seed

CREATE_PATH = "/api/v1/people/*/involvements"


def _faults(api: Api, **config: Any) -> dict[str, Any]:
    response = api.control("POST", "/_mock/faults", json=config)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_status_fault_fires_the_given_number_of_times(api: Api) -> None:
    """A 503 rule with times=2 fails two matching calls with Retry-After, then lets calls through."""
    seed(api, {"personId": "P1"})
    _faults(api, rules=[{"method": "POST", "path": CREATE_PATH, "status": 503, "retryAfter": 1, "times": 2}])
    first, second, third = (api.create("P1", key="k") for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 201]
    assert error_of(first)["code"] == "MAINTENANCE" and first.headers["Retry-After"] == "1"
    state = api.control("GET", "/_mock/faults").json()
    assert state["rules"][0]["fired"] == 2 and state["rules"][0]["remaining"] == 0


def test_rules_match_method_and_path(api: Api) -> None:
    """A rule for POST creates leaves listings alone."""
    _faults(api, rules=[{"method": "POST", "path": CREATE_PATH, "status": 500}])
    assert api.get("/api/v1/involvements").status_code == 200


def _outcomes(api: Api, seed_value: int) -> list[int]:
    _faults(api, seed=seed_value, rules=[{"path": "/api/v1/involvements", "status": 502, "probability": 0.5}])
    return [api.get("/api/v1/involvements").status_code for _ in range(20)]


def test_probability_is_deterministic_for_a_seed(api: Api) -> None:
    """The same seed gives the same sequence of failures; the rule fails some but not all calls."""
    first = _outcomes(api, 11)
    assert _outcomes(api, 11) == first
    assert set(first) == {200, 502}


def test_after_commit_applies_the_write_then_answers_504(api: Api) -> None:
    """An afterCommit 504 stores the flag; a retry with the same key replays the original 201."""
    seed(api, {"personId": "P1"})
    _faults(api, rules=[{"method": "POST", "path": CREATE_PATH, "status": 504, "afterCommit": True, "times": 1}])
    lost = api.create("P1", key="retry-me")
    assert lost.status_code == 504 and error_of(lost)["code"] == "GATEWAY_TIMEOUT"
    assert len(api.control("GET", "/_mock/involvements").json()["items"]) == 1
    retried = api.create("P1", key="retry-me")
    assert retried.status_code == 201 and retried.json()["id"] == "INV-000001"


def test_latency_delays_the_answer(api: Api) -> None:
    """A latencyMs rule delays matching answers by at least that long and still answers normally."""
    _faults(api, rules=[{"path": "/api/v1/involvements", "latencyMs": 300, "times": 1}])
    started = time.monotonic()
    response = api.get("/api/v1/involvements")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_drop_connection_closes_the_socket_without_an_answer(api: Api) -> None:
    """A dropConnection rule makes the client see a connection error, and the journal marks the request dropped."""
    _faults(api, rules=[{"path": "/api/v1/involvements", "dropConnection": True, "times": 1}])
    with pytest.raises(requests.ConnectionError):
        api.get("/api/v1/involvements")
    assert api.get("/api/v1/involvements").status_code == 200
    dropped = [item for item in api.control("GET", "/_mock/requests").json()["items"] if item["dropped"]]
    assert len(dropped) == 1 and dropped[0]["status"] is None


def test_drop_connection_after_commit_keeps_the_write(api: Api) -> None:
    """dropConnection with afterCommit stores the flag and then drops the connection."""
    seed(api, {"personId": "P1"})
    _faults(api, rules=[{"method": "POST", "path": CREATE_PATH, "dropConnection": True, "afterCommit": True, "times": 1}])
    with pytest.raises(requests.ConnectionError):
        api.create("P1", key="k")
    assert api.create("P1", key="k").status_code == 201
    assert len(api.control("GET", "/_mock/involvements").json()["items"]) == 1


def test_rate_limit_answers_429_with_retry_after(inproc: InProcess) -> None:
    """Beyond the burst the mock answers 429 RATE_LIMITED with Retry-After, and refills at perSecond."""
    api = inproc.api
    _faults(api, rateLimit={"perSecond": 2, "burst": 3})
    statuses = [api.get("/api/v1/involvements").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = api.get("/api/v1/involvements")
    assert error_of(limited)["code"] == "RATE_LIMITED" and limited.headers["Retry-After"] == "1"
    inproc.clock.advance(1)
    assert [api.get("/api/v1/involvements").status_code for _ in range(3)] == [200, 200, 429]


def test_fault_configuration_is_validated(api: Api) -> None:
    """Unknown rule fields and afterCommit without an answer are refused with 422."""
    unknown = api.control("POST", "/_mock/faults", json={"rules": [{"path": "*", "sttus": 500}]})
    assert unknown.status_code == 422 and error_of(unknown)["details"] == {"fields": ["rules.0.sttus"]}
    pointless = api.control("POST", "/_mock/faults", json={"rules": [{"afterCommit": True}]})
    assert pointless.status_code == 422


def test_control_plane_is_never_faulted(api: Api) -> None:
    """A catch-all rule does not break the control plane, so a tester can always clear it."""
    _faults(api, rules=[{"path": "*", "status": 500}])
    assert api.get("/api/v1/involvements").status_code == 500
    assert api.control("DELETE", "/_mock/faults").status_code == 204
    assert api.get("/api/v1/involvements").status_code == 200
