"""Tests of what the tester console stands on: journal fields, filters and paging, rule-by-rule faults, strict validation."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.mock.conftest import Api, InProcess, error_of, seed

CREATE_PATH = "/api/v1/people/*/involvements"


def _journal(api: Api, **params: Any) -> dict[str, Any]:
    response = api.control("GET", "/_mock/requests", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _faults(api: Api) -> dict[str, Any]:
    body: dict[str, Any] = api.control("GET", "/_mock/faults").json()
    return body


def _listings(api: Api, count: int) -> None:
    for _ in range(count):
        assert api.get("/api/v1/involvements").status_code == 200


def _listings_any(api: Api, count: int) -> None:
    for _ in range(count):
        api.get("/api/v1/involvements")


# --------------------------------------------------------------------------- journal fields


def test_journal_records_the_error_code_of_each_answer(inproc: InProcess) -> None:
    """Each record carries the answer's error code (envelope or OAuth), and null for a success."""
    api = inproc.api
    seed(api, {"personId": "P1", "state": "archived"})
    assert api.create("P1").status_code == 410
    assert api.get("/api/v1/involvements").status_code == 200
    assert api.get("/api/v1/involvements", headers={}).status_code == 401
    bad_login = api.session.post("/connect/token", data={"grant_type": "client_credentials", "client_id": "nobody"})
    assert bad_login.status_code == 401
    codes = [(item["status"], item["errorCode"]) for item in _journal(api)["items"]]
    assert codes[-4:] == [(410, "PERSON_ARCHIVED"), (200, None), (401, "TOKEN_MISSING"), (401, "invalid_client")]


def test_journal_names_the_rule_that_fired(inproc: InProcess) -> None:
    """An injected answer records its rule's id and code; a latency-only rule is recorded as fired but not injected."""
    api = inproc.api
    rules = [
        {"method": "GET", "path": "/api/v1/involvements", "latencyMs": 1, "times": 1},
        {"method": "GET", "path": "/api/v1/involvements", "status": 503, "times": 1},
    ]
    state = api.control("POST", "/_mock/faults", json={"rules": rules}).json()
    delay_id, fail_id = (rule["id"] for rule in state["rules"])
    statuses = [api.get("/api/v1/involvements").status_code for _ in range(3)]
    assert statuses == [200, 503, 200]
    delayed, failed, clean = _journal(api)["items"][-3:]
    assert (delayed["faultRule"], delayed["injectedFault"], delayed["errorCode"]) == (delay_id, False, None)
    assert (failed["faultRule"], failed["injectedFault"], failed["errorCode"]) == (fail_id, True, "MAINTENANCE")
    assert (clean["faultRule"], clean["injectedFault"], clean["rateLimited"]) == (None, False, False)


def test_journal_marks_rate_limited_answers(inproc: InProcess) -> None:
    """A 429 from the rate limit is injected, rate limited, with no rule and the code RATE_LIMITED."""
    api = inproc.api
    api.control("POST", "/_mock/faults", json={"rateLimit": {"perSecond": 1, "burst": 1}})
    assert [api.get("/api/v1/involvements").status_code for _ in range(2)] == [200, 429]
    limited = _journal(api)["items"][-1]
    assert limited["injectedFault"] and limited["rateLimited"]
    assert (limited["faultRule"], limited["errorCode"]) == (None, "RATE_LIMITED")


# --------------------------------------------------------------------------- journal filters and paging


def test_journal_filters_by_method_status_path_injected_and_key(inproc: InProcess) -> None:
    """Each filter keeps only the records it names, and filters combine."""
    api = inproc.api
    seed(api, {"personId": "P1"}, {"personId": "P2", "state": "restricted"})
    api.control("POST", "/_mock/faults", json={"rules": [{"method": "POST", "path": CREATE_PATH, "status": 503, "times": 2}]})
    for _ in range(3):
        api.create("P1", key="same-key")
    api.create("P2", key="other-key")
    api.get("/api/v1/involvements")

    def seqs(**params: Any) -> list[tuple[str, int | None]]:
        return [(item["method"], item["status"]) for item in _journal(api, **params)["items"]]

    assert seqs(method="post", path=CREATE_PATH) == [("POST", 503), ("POST", 503), ("POST", 201), ("POST", 403)]
    assert seqs(status="5xx") == [("POST", 503), ("POST", 503)]
    assert seqs(status="403") == [("POST", 403)]
    assert seqs(status="2xx", method="GET") == [("GET", 200)]
    assert seqs(injected="true") == [("POST", 503), ("POST", 503)]
    assert ("POST", 503) not in seqs(injected="false")
    assert seqs(key="same-key") == [("POST", 503), ("POST", 503), ("POST", 201)]
    assert seqs(key="same-key", injected="false") == [("POST", 201)]
    assert seqs(path="/api/v1/people/P2/*") == [("POST", 403)]


def test_journal_filters_dropped_requests(api: Api) -> None:
    """status=dropped finds the requests whose connection a rule dropped."""
    api.control("POST", "/_mock/faults", json={"rules": [{"path": "/api/v1/involvements", "dropConnection": True, "times": 1}]})
    with pytest.raises(requests.ConnectionError):
        api.get("/api/v1/involvements")
    api.get("/api/v1/involvements")
    [dropped] = _journal(api, status="dropped")["items"]
    assert dropped["dropped"] and dropped["status"] is None and dropped["injectedFault"]


def test_journal_pages_back_beyond_the_latest(inproc: InProcess) -> None:
    """Following nextBefore visits every matching record exactly once, newest page first, each page oldest first."""
    api = inproc.api
    _listings(api, 120)
    everything = [item["seq"] for item in _journal(api, path="/api/v1/involvements")["items"]]
    assert len(everything) == 120
    pages: list[list[int]] = []
    params: dict[str, Any] = {"path": "/api/v1/involvements", "limit": 50}
    while True:
        body = _journal(api, **params)
        pages.append([item["seq"] for item in body["items"]])
        assert body["matched"] == 120 - sum(map(len, pages[:-1]))
        if body["nextBefore"] is None:
            break
        assert body["nextBefore"] == pages[-1][0]
        params["before"] = body["nextBefore"]
    assert [len(page) for page in pages] == [50, 50, 20]
    assert [seq for page in reversed(pages) for seq in page] == everything


def test_journal_since_and_before_bound_the_records(inproc: InProcess) -> None:
    """since and before are exclusive bounds on seq; without limit every record between them is returned."""
    api = inproc.api
    _listings(api, 10)
    seqs = [item["seq"] for item in _journal(api)["items"]]
    middle = [item["seq"] for item in _journal(api, since=seqs[2], before=seqs[7])["items"]]
    assert middle == seqs[3:7]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"method": "G3T"}, ["method"]),
        ({"status": "5x"}, ["status"]),
        ({"status": "600"}, ["status"]),
        ({"status": ""}, ["status"]),
        ({"injected": "yes"}, ["injected"]),
        ({"path": "has space"}, ["path"]),
        ({"path": "/" * 513}, ["path"]),
        ({"key": "k" * 65}, ["key"]),
        ({"before": "0"}, ["before"]),
        ({"before": "-3"}, ["before"]),
        ({"limit": "10001"}, ["limit"]),
        ({"since": "x"}, ["since"]),
        ({"status": "nope", "limit": "0", "injected": "1"}, ["status", "injected", "limit"]),
        ({"colour": "red"}, ["colour"]),
    ],
)
def test_journal_parameters_are_validated_strictly(inproc: InProcess, params: dict[str, str], named: list[str]) -> None:
    """A malformed, out-of-range, blank or unknown parameter is 400 INVALID_QUERY naming every bad one, never its value."""
    response = inproc.api.control("GET", "/_mock/requests", params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "INVALID_QUERY" and error["details"] == {"parameters": named}
    assert all(value not in response.text for value in params.values() if len(value) > 2)


def test_repeated_journal_parameter_is_refused(inproc: InProcess) -> None:
    """A parameter given twice is refused rather than one of its values silently chosen."""
    response = inproc.api.control("GET", "/_mock/requests?status=500&status=503")
    assert response.status_code == 400 and error_of(response)["details"] == {"parameters": ["status"]}


# --------------------------------------------------------------------------- fault rules one by one


def test_added_rules_keep_the_counters_of_the_others(inproc: InProcess) -> None:
    """POST /_mock/faults/rules appends a rule with a new id; the rules already there keep their fired counts."""
    api = inproc.api
    api.control("POST", "/_mock/faults", json={"rules": [{"path": "/api/v1/involvements", "status": 500, "times": 1}]})
    assert api.get("/api/v1/involvements").status_code == 500
    added = api.control("POST", "/_mock/faults/rules", json={"method": "DELETE", "path": "/api/*", "status": 502})
    assert added.status_code == 201
    rules = added.json()["rules"]
    assert [(r["id"], r["fired"], r["remaining"], r["spent"]) for r in rules] == [(1, 1, 0, True), (2, 0, None, False)]
    assert rules[1]["rule"]["method"] == "DELETE"
    assert api.get("/api/v1/involvements").status_code == 200  # the spent rule stays spent


def test_rules_are_removed_by_id(inproc: InProcess) -> None:
    """DELETE /_mock/faults/rules/{id} removes that rule only; an unknown id is 404 FAULT_RULE_NOT_FOUND."""
    api = inproc.api
    for status in (500, 502, 503):
        api.control("POST", "/_mock/faults/rules", json={"path": "/nowhere", "status": status})
    assert api.control("DELETE", "/_mock/faults/rules/2").status_code == 204
    assert [(r["id"], r["rule"]["status"]) for r in _faults(api)["rules"]] == [(1, 500), (3, 503)]
    for missing in ("2", "99", "abc", "1" * 30):
        gone = api.control("DELETE", f"/_mock/faults/rules/{missing}")
        assert gone.status_code == 404 and error_of(gone)["code"] == "FAULT_RULE_NOT_FOUND"
    api.control("POST", "/_mock/reset")
    api.control("POST", "/_mock/faults/rules", json={"path": "/nowhere", "status": 500})
    assert [r["id"] for r in _faults(api)["rules"]] == [1]  # a reset starts the ids again


def test_a_bad_rule_is_refused_whole(inproc: InProcess) -> None:
    """An invalid rule is 422 with each problem described, and the rules stay as they were."""
    api = inproc.api
    api.control("POST", "/_mock/faults/rules", json={"path": "/nowhere", "status": 500})
    before = _faults(api)
    refused = api.control(
        "POST", "/_mock/faults/rules", json={"path": "/x", "status": 700, "probability": 2, "afterCommit": True}
    )
    assert refused.status_code == 422
    problems = {p["field"]: p["message"] for p in error_of(refused)["details"]["problems"]}
    assert set(problems) == {"status", "probability"}
    assert "599" in problems["status"] and "1" in problems["probability"]
    pointless = api.control("POST", "/_mock/faults/rules", json={"afterCommit": True})
    assert error_of(pointless)["details"]["problems"] == [
        {"field": "(body)", "message": "afterCommit needs a status or dropConnection"}
    ]
    assert _faults(api) == before


def test_patching_settings_keeps_rules_and_counters(inproc: InProcess) -> None:
    """PATCH /_mock/faults changes only the settings it names; the rules keep their ids and fired counts."""
    api = inproc.api
    api.control("POST", "/_mock/faults", json={"seed": 3, "rules": [{"path": "/api/v1/involvements", "status": 500, "times": 2}]})
    api.get("/api/v1/involvements")
    patched = api.control("PATCH", "/_mock/faults", json={"tokenTtlSeconds": 60, "rateLimit": {"perSecond": 5}})
    assert patched.status_code == 200
    state = patched.json()
    assert (state["seed"], state["tokenTtlSeconds"], state["listingDelaySeconds"]) == (3, 60, 0.0)
    assert state["rateLimit"] == {"perSecond": 5.0, "burst": None}
    assert [(r["id"], r["fired"]) for r in state["rules"]] == [(1, 1)]
    cleared = api.control("PATCH", "/_mock/faults", json={"rateLimit": None, "seed": None}).json()
    assert cleared["rateLimit"] is None and cleared["seed"] == 7  # null seed: back to the server's --seed
    assert cleared["tokenTtlSeconds"] == 60


def test_patching_the_seed_restarts_the_random_sequence(inproc: InProcess) -> None:
    """Setting the seed again replays the same sequence of probabilistic failures."""
    api = inproc.api
    api.control("POST", "/_mock/faults", json={"rules": [{"path": "/api/v1/involvements", "status": 502, "probability": 0.5}]})

    def outcomes() -> list[int]:
        assert api.control("PATCH", "/_mock/faults", json={"seed": 11}).status_code == 200
        return [api.get("/api/v1/involvements").status_code for _ in range(20)]

    first = outcomes()
    assert outcomes() == first and set(first) == {200, 502}


def test_a_bad_settings_patch_applies_nothing(inproc: InProcess) -> None:
    """A PATCH with one bad setting among good ones is refused whole, and a PATCH cannot carry rules."""
    api = inproc.api
    before = _faults(api)
    mixed = api.control("PATCH", "/_mock/faults", json={"tokenTtlSeconds": 5, "rateLimit": {"perSecond": 5, "burst": 0}})
    assert mixed.status_code == 422 and error_of(mixed)["details"]["fields"] == ["rateLimit.burst"]
    nulled = api.control("PATCH", "/_mock/faults", json={"tokenTtlSeconds": None})
    assert nulled.status_code == 422 and error_of(nulled)["details"]["fields"] == ["tokenTtlSeconds"]
    with_rules = api.control("PATCH", "/_mock/faults", json={"rules": []})
    assert with_rules.status_code == 422 and error_of(with_rules)["code"] == "UNKNOWN_FIELD"
    assert _faults(api) == before


# --------------------------------------------------------------------------- people


@pytest.mark.parametrize(
    ("person", "message"),
    [
        ({"personId": "P1", "state": "merged"}, "a merged person needs a successorPersonId"),
        (
            {"personId": "P1", "state": "archived", "successorPersonId": "P2"},
            "successorPersonId is only allowed with state merged",
        ),
        ({"personId": "P1", "state": "merged", "successorPersonId": "P1"}, "a person cannot be merged into itself"),
    ],
)
def test_merges_need_a_successor_that_is_someone_else(inproc: InProcess, person: dict[str, str], message: str) -> None:
    """A merge without a successor, a successor on an unmerged person, or a merge into oneself is 422, described."""
    refused = inproc.api.control("POST", "/_mock/people", json={"people": [person]})
    assert refused.status_code == 422
    assert error_of(refused)["details"]["problems"] == [{"field": "people.0", "message": message}]


def test_a_seed_with_one_bad_person_seeds_nobody(inproc: InProcess) -> None:
    """Seeding is all or nothing: one invalid person in a batch leaves the people as they were."""
    api = inproc.api
    seed(api, {"personId": "P1"})
    batch = [{"personId": "P1", "state": "archived"}, {"personId": "P2"}, {"personId": "CANARY VALUE!"}]
    refused = api.control("POST", "/_mock/people", json={"people": batch})
    assert refused.status_code == 422 and error_of(refused)["details"]["fields"] == ["people.2.personId"]
    assert "CANARY VALUE" not in refused.text
    assert api.control("GET", "/_mock/people").json()["people"] == [
        {"personId": "P1", "state": "active", "successorPersonId": None}
    ]


# --------------------------------------------------------------------------- the console page and its assets


def test_console_applies_the_journal_filters_from_its_query(inproc: InProcess) -> None:
    """/_mock/?status=503 shows only the matching rows; blank parameters are ignored, as a browser form sends them."""
    api = inproc.api
    api.control("POST", "/_mock/faults", json={"rules": [{"path": "/api/v1/involvements", "status": 503, "times": 1}]})
    _listings_any(api, 3)
    page = api.control("GET", "/_mock/?method=&status=503&path=&injected=true&key=&limit=20")
    assert page.status_code == 200
    assert page.text.count('<tr class="req ') == 1 and 'data-injected="true"' in page.text
    assert "1 of 1 matching" in page.text


def test_console_shows_why_a_filter_is_refused(inproc: InProcess) -> None:
    """A bad filter gives a 400 page carrying the control plane's message and the parameter, not a half-filtered journal."""
    page = inproc.api.control("GET", "/_mock/?status=teapot&limit=20")
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "INVALID_QUERY" in page.text and "A query parameter is missing, unknown or out of range." in page.text
    assert "(status)" in page.text and '<tr class="req' not in page.text
    assert 'value="teapot"' in page.text  # what was typed stays in the form, escaped


def test_console_pages_through_the_journal(inproc: InProcess) -> None:
    """The console's older and newer links walk the journal 50 rows at a time."""
    api = inproc.api
    _listings(api, 120)
    latest = api.control("GET", "/_mock/").text
    assert "Showing #121 to #72: 50 of 121 matching" in latest  # the token request, then 120 listings
    assert 'href="/_mock/?before=72#journal" data-page="older"' in latest and 'data-page="newer"' not in latest
    older = api.control("GET", "/_mock/?before=72").text
    assert "Showing #71 to #22: 50 of 71 matching before #72" in older
    assert 'href="/_mock/#journal" data-page="newer"' in older  # the newer page is the latest
    oldest = api.control("GET", "/_mock/?before=22").text
    assert "Showing #21 to #1: 21 of 21 matching" in oldest and 'data-page="older"' not in oldest
    assert 'href="/_mock/?before=72#journal" data-page="newer"' in oldest


def test_console_assets_are_served_by_the_mock(inproc: InProcess) -> None:
    """The console's script and style come from the mock itself; anything else under /_mock/static/ is 404."""
    api = inproc.api
    script = api.control("GET", "/_mock/static/console.js")
    style = api.control("GET", "/_mock/static/console.css")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    for text in (script.text, style.text):
        assert "http://" not in text and "https://" not in text and "@import" not in text
    assert api.control("GET", "/_mock/static/docs.html").status_code == 404
    assert api.control("GET", "/_mock/static/..%2Fapp.py").status_code == 404


def test_console_marks_spent_rules(inproc: InProcess) -> None:
    """A rule whose times are used up is rendered as spent, not dropped from the page."""
    api = inproc.api
    api.control("POST", "/_mock/faults/rules", json={"path": "/api/v1/involvements", "status": 500, "times": 1})
    api.control("POST", "/_mock/faults/rules", json={"path": "/nowhere", "status": 500})
    api.get("/api/v1/involvements")
    html = api.control("GET", "/_mock/").text
    assert '<tr data-rule="1" class="spent">' in html and '<tr data-rule="2" class="active">' in html
    assert "1 (0 left)" in html
