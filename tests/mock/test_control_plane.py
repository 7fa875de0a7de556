"""Tests of the /_mock control plane, the journal, the tester page, the docs and the state file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from mocks.one.journal import JOURNAL_CAPACITY
from mocks.one.server import start_in_thread
from tests.mock.conftest import TIMEOUT, Api, error_of, seed


def test_reset_forgets_people_involvements_journal_and_faults(api: Api) -> None:
    """POST /_mock/reset empties everything, and ids start again at INV-000001."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    api.control("POST", "/_mock/faults", json={"rules": [{"path": "/nowhere", "status": 503}]})
    assert api.control("POST", "/_mock/reset").status_code == 204
    assert api.control("GET", "/_mock/people").json()["people"] == []
    assert api.control("GET", "/_mock/involvements").json()["items"] == []
    assert api.control("GET", "/_mock/requests").json()["items"] == []
    assert api.control("GET", "/_mock/faults").json()["rules"] == []
    seed(api, {"personId": "P1"})
    assert api.create("P1").json()["id"] == "INV-000001"


def test_seeding_people_validates_strictly(api: Api) -> None:
    """Unknown fields in a seed are 422 UNKNOWN_FIELD; bad ids or states are 422 VALIDATION_FAILED; values never echoed."""
    unknown = api.control("POST", "/_mock/people", json={"people": [{"personId": "P1", "name": "Canary Smith"}]})
    assert unknown.status_code == 422 and error_of(unknown)["details"] == {"fields": ["people.0.name"]}
    invalid = api.control("POST", "/_mock/people", json={"people": [{"personId": "bad id!", "state": "dead"}]})
    assert invalid.status_code == 422 and error_of(invalid)["code"] == "VALIDATION_FAILED"
    assert "Canary" not in unknown.text and "bad id!" not in invalid.text


def test_direct_involvements_show_every_team_and_status(api: Api) -> None:
    """POST /_mock/involvements stores any team's involvement; GET lists all; DELETE removes one as drift."""
    made = api.control("POST", "/_mock/involvements", json={"personId": "P9", "serviceTeam": "EHS"})
    assert made.status_code == 201 and made.json()["involvementType"] == "EHS_WORKING_WITH_FAMILY"
    api.control("POST", "/_mock/involvements", json={"personId": "P9"})
    assert api.control("DELETE", "/_mock/involvements/INV-000002").status_code == 204
    items = api.control("GET", "/_mock/involvements").json()["items"]
    assert [(i["serviceTeam"], i["status"]) for i in items] == [("EHS", "active"), ("PIAS", "removed")]
    assert api.control("DELETE", "/_mock/involvements/INV-000077").status_code == 404


def test_journal_records_requests_with_authorization_masked(api: Api) -> None:
    """The journal holds method, path, query, headers (token masked), raw body and status of each One API call."""
    seed(api, {"personId": "P1"})
    api.create("P1", key="journal-key")
    api.get("/api/v1/involvements", params={"status": "active"})
    items = api.control("GET", "/_mock/requests").json()["items"]
    token_call, create, listing = items[-3:]
    assert token_call["path"] == "/connect/token" and "local-secret" not in token_call["body"]
    assert create["method"] == "POST" and create["path"] == "/api/v1/people/P1/involvements" and create["status"] == 201
    assert create["body"] == '{"involvementType": "PIAS_WORKING_WITH_FAMILY"}'
    assert create["headers"]["authorization"] == "Bearer ***" and create["headers"]["idempotency-key"] == "journal-key"
    assert api.token not in str(items)
    assert listing["query"] == "status=active" and listing["status"] == 200
    assert [item["seq"] for item in api.control("GET", "/_mock/requests", params={"limit": 1}).json()["items"]] == [
        listing["seq"]
    ]
    assert api.control("GET", "/_mock/requests", params={"limit": 0}).status_code == 400


def test_control_plane_calls_are_not_journalled(api: Api) -> None:
    """Reading the journal or the tester page does not add to the journal."""
    api.control("GET", "/_mock/")
    api.control("GET", "/_mock/requests")
    paths = [item["path"] for item in api.control("GET", "/_mock/requests").json()["items"]]
    assert all(not path.startswith("/_mock") for path in paths)


def test_tester_page_renders_escaped_data(api: Api) -> None:
    """The console lists people, involvements, requests and faults, HTML-escaped, and loads only its own assets."""
    seed(api, {"personId": "P1"})
    api.create("P1")
    api.session.post(
        api.url("/api/v1/people/P1/involvements"),
        data="<script>alert(1)</script>",
        headers=api.auth(**{"Idempotency-Key": "k", "Content-Type": "application/json"}),
        timeout=TIMEOUT,
    )
    api.control("POST", "/_mock/faults", json={"rules": [{"path": "/x/<b>*", "status": 503}]})
    page = api.control("GET", "/_mock/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "/_mock/static/console.js" in html and '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "INV-000001" in html and "P1" in html and "PIAS_WORKING_WITH_FAMILY" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;*" in html and "<b>" not in html  # paths may wrap at their slashes (<wbr>)
    assert "http://" not in html.replace(api.base, "") and "https://" not in html
    assert f"(the last {JOURNAL_CAPACITY:,})" in html  # the journal's real capacity, not a copy of it


def test_docs_page_works_offline(api: Api) -> None:
    """/docs is a self-contained page that loads /openapi.json and references no external asset."""
    html = api.control("GET", "/docs").text
    assert "/openapi.json" in html and "https://" not in html and "http://" not in html


def test_openapi_describes_the_one_api(api: Api) -> None:
    """/openapi.json documents every One API call with response schemas and the error envelope."""
    spec = api.control("GET", "/openapi.json").json()
    paths = spec["paths"]
    assert {
        "/connect/token",
        "/api/v1/involvements",
        "/api/v1/people/{personId}/involvements",
        "/api/v1/involvements/{involvementId}",
    } <= set(paths)
    create = paths["/api/v1/people/{personId}/involvements"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Involvement"}
    assert create["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert spec["components"]["schemas"]["InvolvementCreate"]["additionalProperties"] is False
    assert "bearerAuth" in spec["components"]["securitySchemes"]


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    """People, involvements and idempotency keys written to the state file are there after a restart."""
    state = tmp_path / "mock-state.json"
    with start_in_thread(state_file=state) as first, requests.Session() as session:
        api = Api(first.url, session)
        seed(api, {"personId": "P1"}, {"personId": "P2", "state": "archived"})
        api.fetch_token()
        created = api.create("P1", key="survivor").json()
    assert state.exists()
    with start_in_thread(state_file=state) as second, requests.Session() as session:
        api = Api(second.url, session)
        api.fetch_token()
        assert api.control("GET", "/_mock/involvements").json()["items"] == [created]
        assert api.create("P1", key="survivor").json() == created
        assert api.create("P2").status_code == 410
        seed(api, {"personId": "P3"})
        assert api.create("P3").json()["id"] == "INV-000002"


def test_cli_prints_where_it_listens(tmp_path: Path) -> None:
    """flagsync-mock prints one line with its URL and tester page, and serves the seeded people."""
    people = tmp_path / "people.json"
    people.write_text('{"people": [{"personId": "P1", "state": "restricted"}]}', encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "mocks.one.cli", "--port", "0", "--people", str(people), "--client", "a:b:EHS"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line and "/_mock/" in line
        url = line.split("listening on ")[1].split()[0]
        assert requests.get(url + "/_mock/people", timeout=TIMEOUT).json()["people"][0]["state"] == "restricted"
        token = requests.post(
            url + "/connect/token",
            data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"},
            timeout=TIMEOUT,
        )
        assert token.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
