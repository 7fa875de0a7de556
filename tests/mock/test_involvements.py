"""Tests of the mock's involvement calls: create, idempotency, person states, listings, reads and removals."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.requests import Request

from mocks.one.route_helpers import bounded_body
from tests.mock.conftest import Api, InProcess, error_of, seed


def _ours(api: Api, **params: Any) -> Any:
    return api.get("/api/v1/involvements", params=params)


def test_create_returns_the_resource_with_etag_and_location(api: Api) -> None:
    """A create answers 201 with the resource, a weak ETag of its version and its Location."""
    seed(api, {"personId": "P0001234"})
    response = api.create("P0001234")
    body = response.json()
    assert response.status_code == 201
    assert body["id"] == "INV-000001" and body["personId"] == "P0001234" and body["serviceTeam"] == "PIAS"
    assert body["involvementType"] == "PIAS_WORKING_WITH_FAMILY" and body["status"] == "active" and body["version"] == 1
    assert set(body) == {"id", "personId", "serviceTeam", "involvementType", "status", "startDate", "lastUpdated", "version"}
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"] == "/api/v1/involvements/INV-000001"


def test_replaying_an_idempotency_key_returns_the_original_answer(api: Api) -> None:
    """The same key and body gives back the original 201 and creates nothing new."""
    seed(api, {"personId": "P1"})
    first = api.create("P1", key="same")
    again = api.create("P1", key="same")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert len(api.control("GET", "/_mock/involvements").json()["items"]) == 1


def test_reusing_an_idempotency_key_with_another_request_is_refused(api: Api) -> None:
    """The same key for another person is 422 IDEMPOTENCY_KEY_REUSED."""
    seed(api, {"personId": "P1"}, {"personId": "P2"})
    api.create("P1", key="same")
    assert error_of(api.create("P2", key="same"))["code"] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize("key", [None, "", "x" * 65, "has space"])
def test_create_without_a_usable_idempotency_key_is_refused(api: Api, key: str | None) -> None:
    """No key, an empty one, an over-long one or one with spaces is 400 IDEMPOTENCY_KEY_REQUIRED."""
    seed(api, {"personId": "P1"})
    headers = api.auth(**({} if key is None else {"Idempotency-Key": key}))
    response = api.session.post(
        api.url("/api/v1/people/P1/involvements"),
        json={"involvementType": "PIAS_WORKING_WITH_FAMILY"},
        headers=headers,
        timeout=5,
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "IDEMPOTENCY_KEY_REQUIRED"


def test_second_active_flag_is_a_duplicate(api: Api) -> None:
    """A second create for the same person is 409 DUPLICATE_ACTIVE_INVOLVEMENT naming the existing one."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    error = error_of(api.create("P1"))
    assert error["code"] == "DUPLICATE_ACTIVE_INVOLVEMENT"
    assert error["details"] == {"existingInvolvementId": "INV-000001"}


@pytest.mark.parametrize(
    ("person", "status", "code", "details"),
    [
        ({"personId": "PA", "state": "archived"}, 410, "PERSON_ARCHIVED", {}),
        ({"personId": "PR", "state": "restricted"}, 403, "RECORD_RESTRICTED", {}),
        ({"personId": "PM", "state": "merged", "successorPersonId": "PN"}, 409, "PERSON_MERGED", {"successorPersonId": "PN"}),
    ],
)
def test_person_states_refuse_a_create(api: Api, person: dict[str, str], status: int, code: str, details: dict[str, str]) -> None:
    """Archived, restricted and merged people get their contract error on create and on their listing."""
    seed(api, person)
    for response in (api.create(person["personId"]), api.get(f"/api/v1/people/{person['personId']}/involvements")):
        assert response.status_code == status
        error = error_of(response)
        assert error["code"] == code and error["details"] == details


def test_unknown_person_is_not_found(api: Api) -> None:
    """A person who is not seeded is 404 PERSON_NOT_FOUND."""
    assert error_of(api.create("NOBODY"))["code"] == "PERSON_NOT_FOUND"


def test_malformed_person_id_is_not_found(api: Api) -> None:
    """A person id outside the contract's pattern is 404 PERSON_NOT_FOUND."""
    assert error_of(api.create("_bad.id"))["code"] == "PERSON_NOT_FOUND"


def test_any_person_makes_every_well_formed_id_active(inproc: InProcess) -> None:
    """With any_person, an unseeded well-formed id can be flagged, but a seeded archived one still cannot."""
    inproc.core.any_person = True
    api = inproc.api
    seed(api, {"personId": "PA", "state": "archived"})
    assert api.create("ANYONE-1").status_code == 201
    assert api.create("PA").status_code == 410


def test_unknown_body_field_is_refused_without_echoing_its_value(api: Api) -> None:
    """Extra fields are 422 UNKNOWN_FIELD naming the fields; the submitted values appear nowhere in the answer."""
    seed(api, {"personId": "P1"})
    body = {"involvementType": "PIAS_WORKING_WITH_FAMILY", "name": "Canary Smith", "dob": "2012-01-01"}
    response = api.create("P1", body=body)
    error = error_of(response)
    assert response.status_code == 422 and error["code"] == "UNKNOWN_FIELD"
    assert error["details"] == {"fields": ["dob", "name"]}
    assert "Canary" not in response.text and "2012-01-01" not in response.text


@pytest.mark.parametrize("body", [{"involvementType": "EHS_WORKING_WITH_FAMILY"}, {"involvementType": 7}, {}])
def test_wrong_involvement_type_is_refused(api: Api, body: dict[str, Any]) -> None:
    """Another team's type, a non-string or a missing type is 422 INVALID_INVOLVEMENT_TYPE."""
    seed(api, {"personId": "P1"})
    response = api.create("P1", body=body)
    assert response.status_code == 422 and error_of(response)["code"] == "INVALID_INVOLVEMENT_TYPE"
    assert "EHS_WORKING" not in response.text


def test_non_json_content_type_is_415(api: Api) -> None:
    """A form-encoded create is 415 UNSUPPORTED_MEDIA_TYPE in the envelope."""
    seed(api, {"personId": "P1"})
    response = api.session.post(
        api.url("/api/v1/people/P1/involvements"),
        data={"involvementType": "x"},
        headers=api.auth(**{"Idempotency-Key": "k"}),
        timeout=5,
    )
    assert response.status_code == 415 and error_of(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("raw", [b'{"involvementType": ', b"[1, 2]", b'{"involvementType": "A", "involvementType": "B"}', b"NaN"])
def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    """Broken JSON, a non-object, duplicate keys or NaN is 400 MALFORMED_JSON in the envelope."""
    seed(api, {"personId": "P1"})
    headers = api.auth(**{"Idempotency-Key": "k", "Content-Type": "application/json"})
    response = api.session.post(api.url("/api/v1/people/P1/involvements"), data=raw, headers=headers, timeout=5)
    assert response.status_code == 400 and error_of(response)["code"] == "MALFORMED_JSON"


def test_listing_is_ordered_by_id_and_pages_are_stable(api: Api) -> None:
    """Pages of ours come in id order, each page token continuing exactly where the last page ended."""
    seed(api, *({"personId": f"P{n}"} for n in range(7)))
    for n in range(7):
        api.create(f"P{n}")
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"status": "active", "pageSize": 3} | ({"pageToken": token} if token else {})
        body = _ours(api, **params).json()
        assert len(body["items"]) <= 3
        seen += [item["id"] for item in body["items"]]
        token = body["nextPageToken"]
        if token is None:
            break
    assert seen == [f"INV-{n:06d}" for n in range(1, 8)]


def test_listing_shows_only_the_callers_team(api: Api) -> None:
    """Another team's involvements never appear in our listing or our person listing."""
    seed(api, {"personId": "P1"})
    api.control("POST", "/_mock/involvements", json={"personId": "P1", "serviceTeam": "EHS"})
    api.create("P1")
    assert [item["serviceTeam"] for item in _ours(api).json()["items"]] == ["PIAS"]
    assert [item["serviceTeam"] for item in api.get("/api/v1/people/P1/involvements").json()["items"]] == ["PIAS"]


@pytest.mark.parametrize(
    "params", [{"pageSize": "101"}, {"pageSize": "0"}, {"pageSize": "ten"}, {"status": "gone"}, {"colour": "red"}]
)
def test_bad_listing_queries_are_400(api: Api, params: dict[str, str]) -> None:
    """Out-of-range page sizes, unknown statuses and unknown parameters are 400 INVALID_QUERY."""
    response = _ours(api, **params)
    assert response.status_code == 400 and error_of(response)["code"] == "INVALID_QUERY"
    assert "red" not in response.text


def test_default_page_size_is_50(inproc: InProcess) -> None:
    """Without pageSize a page holds 50 items."""
    for n in range(51):
        inproc.core.add_direct(f"P{n}", "PIAS", None, "active")
    body = _ours(inproc.api).json()
    assert len(body["items"]) == 50 and body["nextPageToken"]


def test_forged_page_token_is_refused(api: Api) -> None:
    """A page token the server did not issue is 400 INVALID_PAGE_TOKEN."""
    response = _ours(api, pageToken="eyJhIjoxfQ.0000")
    assert response.status_code == 400 and error_of(response)["code"] == "INVALID_PAGE_TOKEN"


def test_page_tokens_expire_after_ten_minutes(inproc: InProcess) -> None:
    """A page token older than 10 minutes is 400 INVALID_PAGE_TOKEN; a fresh one works."""
    for n in range(3):
        inproc.core.add_direct(f"P{n}", "PIAS", None, "active")
    token = _ours(inproc.api, pageSize=1).json()["nextPageToken"]
    inproc.clock.advance(599)
    assert _ours(inproc.api, pageSize=1, pageToken=token).status_code == 200
    inproc.clock.advance(2)
    response = _ours(inproc.api, pageSize=1, pageToken=token)
    assert response.status_code == 400 and error_of(response)["code"] == "INVALID_PAGE_TOKEN"


def test_person_listing_returns_that_persons_flags(api: Api) -> None:
    """One person's listing holds only that person's involvements of our team."""
    seed(api, {"personId": "P1"}, {"personId": "P2"})
    api.create("P1")
    api.create("P2")
    items = api.get("/api/v1/people/P2/involvements", params={"status": "active"}).json()["items"]
    assert [item["personId"] for item in items] == ["P2"]


def test_get_one_returns_the_resource_and_etag(api: Api) -> None:
    """Reading one involvement returns it with its ETag."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    response = api.get("/api/v1/involvements/INV-000001")
    assert response.status_code == 200 and response.json()["id"] == "INV-000001" and response.headers["ETag"] == 'W/"1"'


def test_delete_with_current_version_removes_the_flag(api: Api) -> None:
    """DELETE with the current If-Match is 204; the involvement then shows status removed and leaves the active listing."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    assert api.delete("/api/v1/involvements/INV-000001", **{"If-Match": 'W/"1"'}).status_code == 204
    assert _ours(api, status="active").json()["items"] == []
    after = api.get("/api/v1/involvements/INV-000001")
    assert after.json()["status"] == "removed" and after.headers["ETag"] == 'W/"2"'
    assert api.create("P1").status_code == 201


def test_delete_of_a_removed_or_unknown_involvement_is_404(api: Api) -> None:
    """Deleting again, or deleting an id that never existed, is 404 INVOLVEMENT_NOT_FOUND."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    api.delete("/api/v1/involvements/INV-000001", **{"If-Match": 'W/"1"'})
    for path in ("/api/v1/involvements/INV-000001", "/api/v1/involvements/INV-999999", "/api/v1/involvements/nonsense"):
        response = api.delete(path, **{"If-Match": 'W/"2"'})
        assert response.status_code == 404 and error_of(response)["code"] == "INVOLVEMENT_NOT_FOUND"


def test_delete_without_if_match_is_428_and_with_stale_version_is_412(api: Api) -> None:
    """A removal needs If-Match (428 otherwise) naming the current version (412 otherwise)."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    assert error_of(api.delete("/api/v1/involvements/INV-000001"))["code"] == "PRECONDITION_REQUIRED"
    assert error_of(api.delete("/api/v1/involvements/INV-000001", **{"If-Match": 'W/"7"'}))["code"] == "PRECONDITION_FAILED"
    assert api.get("/api/v1/involvements/INV-000001").json()["status"] == "active"


def test_delete_with_a_body_is_refused(api: Api) -> None:
    """A removal may carry no reason or note: any body is 422 UNKNOWN_FIELD and nothing is removed."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    response = api.session.delete(
        api.url("/api/v1/involvements/INV-000001"),
        json={"reason": "consent withdrawn"},
        headers=api.auth(**{"If-Match": 'W/"1"'}),
        timeout=5,
    )
    assert response.status_code == 422 and error_of(response)["details"] == {"fields": ["reason"]}
    assert "withdrawn" not in response.text


def test_another_teams_involvement_cannot_be_read_or_removed(api: Api) -> None:
    """Reading or deleting another team's involvement is 403 SERVICE_TEAM_NOT_PERMITTED."""
    api.control("POST", "/_mock/involvements", json={"personId": "P1", "serviceTeam": "EHS"})
    assert error_of(api.get("/api/v1/involvements/INV-000001"))["code"] == "SERVICE_TEAM_NOT_PERMITTED"
    assert (
        error_of(api.delete("/api/v1/involvements/INV-000001", **{"If-Match": 'W/"1"'}))["code"] == "SERVICE_TEAM_NOT_PERMITTED"
    )


def test_the_credential_decides_the_team(api: Api) -> None:
    """A client bound to another team creates that team's type and sees only its own flags."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    api.fetch_token("other-team", "other-secret")
    created = api.create("P1", body={"involvementType": "EHS_WORKING_WITH_FAMILY"})
    assert created.status_code == 201 and created.json()["serviceTeam"] == "EHS"
    assert [item["id"] for item in _ours(api).json()["items"]] == ["INV-000002"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nothing/here", 404, "NOT_FOUND"),
        ("PUT", "/api/v1/involvements", 405, "METHOD_NOT_ALLOWED"),
        ("PATCH", "/_mock/people", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_unknown_routes_and_methods_get_the_envelope(api: Api, method: str, path: str, status: int, code: str) -> None:
    """FastAPI's own 404 and 405 answers come in the error envelope too."""
    response = api.control(method, path)
    assert response.status_code == status and error_of(response)["code"] == code


def test_listing_delay_hides_new_writes_for_a_while(inproc: InProcess) -> None:
    """With listingDelaySeconds a create and a removal reach listings late, while reads by id are current."""
    api = inproc.api
    seed(api, {"personId": "P1"})
    api.control("POST", "/_mock/faults", json={"listingDelaySeconds": 30})
    api.create("P1")
    assert _ours(api).json()["items"] == []
    assert api.get("/api/v1/involvements/INV-000001").status_code == 200
    inproc.clock.advance(30)
    assert [item["id"] for item in _ours(api, status="active").json()["items"]] == ["INV-000001"]
    api.delete("/api/v1/involvements/INV-000001", **{"If-Match": 'W/"1"'})
    assert [item["status"] for item in _ours(api).json()["items"]] == ["active"]
    inproc.clock.advance(30)
    assert _ours(api, status="active").json()["items"] == []


def _declared_only(api: Api, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """Send only a request's head, declaring a terabyte of body, and read the answer (5 s at most)."""
    parts = urlsplit(api.base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        connection.putrequest(method, path)
        for name, value in {**headers, "Content-Length": str(10**12)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_body_declared_over_the_limit_is_refused_unread(api: Api) -> None:
    """A create declaring more than 16 MiB of JSON is 400 MALFORMED_JSON at once: the mock never waits for the body."""
    seed(api, {"personId": "P1"})
    headers = api.auth(**{"Idempotency-Key": "k", "Content-Type": "application/json"})
    status, body = _declared_only(api, "POST", "/api/v1/people/P1/involvements", headers)
    assert status == 400
    assert body["error"]["code"] == "MALFORMED_JSON" and body["error"]["message"] == "The request body is too large."


def test_a_streamed_body_over_the_limit_is_refused(api: Api) -> None:
    """A chunked create body (no Content-Length) one byte over 16 MiB is 400 MALFORMED_JSON, saying it is too large."""
    seed(api, {"personId": "P1"})
    headers = api.auth(**{"Idempotency-Key": "k", "Content-Type": "application/json"})
    chunks = iter([*(b" " * (1024 * 1024) for _ in range(16)), b" "])
    response = api.session.post(api.url("/api/v1/people/P1/involvements"), data=chunks, headers=headers, timeout=30)
    assert response.status_code == 400
    assert error_of(response)["code"] == "MALFORMED_JSON" and error_of(response)["message"] == "The request body is too large."


def test_a_body_of_exactly_the_limit_is_read(api: Api) -> None:
    """16 MiB of JSON exactly is read and judged as JSON (here an object padded with spaces: a create)."""
    seed(api, {"personId": "P1"})
    headers = api.auth(**{"Idempotency-Key": "k", "Content-Type": "application/json"})
    raw = b'{"involvementType": "PIAS_WORKING_WITH_FAMILY"}'
    raw = raw.ljust(16 * 1024 * 1024)
    response = api.session.post(api.url("/api/v1/people/P1/involvements"), data=raw, headers=headers, timeout=30)
    assert response.status_code == 201


def test_a_removal_declaring_a_body_over_the_limit_is_refused_unread(api: Api) -> None:
    """A removal may carry no body; one declared over the limit is 422 UNKNOWN_FIELD (body) without being read."""
    seed(api, {"personId": "P1"})
    created = api.create("P1")
    path = "/api/v1/involvements/" + created.json()["id"]
    status, body = _declared_only(api, "DELETE", path, api.auth(**{"If-Match": created.headers["ETag"]}))
    assert status == 422
    assert body["error"]["code"] == "UNKNOWN_FIELD" and body["error"]["details"] == {"fields": ["(body)"]}


def test_a_token_request_declaring_a_long_body_is_refused_unread(api: Api) -> None:
    """A token request is a few form fields: one declaring more than 64 KiB is invalid_request without being read."""
    status, body = _declared_only(api, "POST", "/connect/token", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert body == {"error": "invalid_request", "error_description": "The body is too large."}


@pytest.mark.parametrize("declared", ["\u00b2", "1e9", "-1", ""])
def test_a_content_length_that_is_not_plain_digits_is_not_trusted(declared: str) -> None:
    """bounded_body reads the body itself when Content-Length is not plain ASCII digits (a superscript two is isdigit())."""
    messages = iter([{"type": "http.request", "body": b'{"a": 1}', "more_body": False}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", declared.encode("latin-1"))]}
    assert asyncio.run(bounded_body(Request(scope, receive), limit=100)) == b'{"a": 1}'
