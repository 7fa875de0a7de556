"""Canary personal data in the consent source never leaves: not in requests, logs, errors or the state store.

The whole composition root runs (settings → SQLite source → HTTP gateway → service → SQLite state
store) against One faked at the HTTP edge with `responses`, including retries, a 412 and a refusal.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import responses
import structlog
from responses import matchers

import flagsync.adapters.csv.source as csv_source
from flagsync.bootstrap import build_app
from flagsync.core.model import RunOutcome, RunTrigger
from flagsync.demo_data import PERSONAL_COLUMNS, write_consent_db
from flagsync.logs import configure_logging
from flagsync.settings import load_settings

BASE = "https://one.example.test"
SECRET = "CANARYSECRET-client-0123456789"
HMAC_KEY = "CANARYKEY-hmac-0123456789abcdef"
TOKEN = "CANARYTOKEN-abcdef"

PERSONAL = {
    "child_name": ["CANARY-NAME-Zebedee Quux", "CANARY-NAME-Xanthe Vole", "CANARY-NAME-Wilf Umber", "CANARY-NAME-Tamsin Sorrel"],
    "address": ["CANARY-ADDR-1 Nowhere Lane", "CANARY-ADDR-2 Elsewhere Rd", "CANARY-ADDR-3 Noplace St", "CANARY-ADDR-4 Faraway"],
    "date_of_birth": ["CANARY-DOB-2015-01-01", "CANARY-DOB-2014-02-02", "CANARY-DOB-2013-03-03", "CANARY-DOB-2012-04-04"],
    "notes": ["CANARY-NOTE-autism", "CANARY-NOTE-ehcp", "CANARY-NOTE-withdrew", "CANARY-NOTE-archived"],
}
# person, record, decision, recorded_at: PCANARYA gets a flag (after a 503), PCANARYB is already present (409),
# PCANARYC withdrew (its flag goes after a 412), PCANARYD is archived in One (410).
ROWS = [
    ("PCANARYA", "RCANARY-0001", "granted", "2026-10-01T10:00:00"),
    ("PCANARYB", "RCANARY-0002", "granted", "2026-10-02T10:00:00"),
    ("PCANARYC", "RCANARY-0003", "withdrawn", "2026-11-20T10:00:00"),
    ("PCANARYD", "RCANARY-0004", "granted", "2026-10-04T10:00:00"),
]
PERSON_IDS = [r[0] for r in ROWS]
RECORD_IDS = [r[1] for r in ROWS] + ["RCANARY-0005"]
CANARIES = [v for values in PERSONAL.values() for v in values] + [SECRET, HMAC_KEY, TOKEN]


#: The columns the canary rows below give values for (the rest of the consent table stays empty).
_COLUMNS = ("record_id", "person_id", "decision", "informed", "consented_by", "recorded_at", "case_status", *PERSONAL_COLUMNS)


def _create_source(path: Path) -> None:
    rows: list[tuple[str | None, ...]] = []
    for n, (person, record, decision, at) in enumerate(ROWS):
        informed, by = ("yes", "parent") if decision == "granted" else (None, None)
        rows.append((record, person, decision, informed, by, at, "open", *(PERSONAL[k][n] for k in PERSONAL_COLUMNS)))
    # An unmatched record (no person id) and a quarantined one (bad timestamp), both full of canaries too.
    rows.append(("RCANARY-0005", "", "granted", "yes", "parent", "2026-10-05T10:00:00", "open",
                 "CANARY-NAME-Unmatched", "CANARY-ADDR-Unmatched", "CANARY-DOB-Unmatched", "CANARY-NOTE-unmatched"))  # fmt: skip
    rows.append(("RCANARY-0006", "PCANARYE", "granted", "yes", "parent", "CANARY-DATE-typo", "open",
                 "CANARY-NAME-Typo", "CANARY-ADDR-Typo", "CANARY-DOB-Typo", "CANARY-NOTE-typo"))  # fmt: skip
    write_consent_db(path, _COLUMNS, rows)


def _flag(inv: str, person: str, version: int = 1) -> dict[str, object]:
    return {"id": inv, "personId": person, "serviceTeam": "PIAS", "involvementType": "PIAS_WORKING_WITH_FAMILY",
            "status": "active", "startDate": "2026-10-01", "lastUpdated": "2026-10-01T10:00:00Z", "version": version}  # fmt: skip


def _error(status: int, code: str) -> dict[str, object]:
    return {"error": {"status": status, "code": code, "message": "refused", "correlationId": "c", "details": {}}}


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    yield buffer
    structlog.reset_defaults()


def _register_one(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{BASE}/connect/token", json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})
    rsps.get(
        f"{BASE}/api/v1/involvements",
        json={"items": [_flag("INV-000010", "PCANARYB"), _flag("INV-000011", "PCANARYC")], "nextPageToken": None},
    )
    create = [matchers.json_params_matcher({"involvementType": "PIAS_WORKING_WITH_FAMILY"}, strict_match=True)]
    a_url = f"{BASE}/api/v1/people/PCANARYA/involvements"
    rsps.post(a_url, status=503, json=_error(503, "UPSTREAM_UNAVAILABLE"), headers={"Retry-After": "0"}, match=create)
    rsps.post(a_url, status=201, json=_flag("INV-000012", "PCANARYA"), headers={"ETag": 'W/"1"'}, match=create)
    rsps.post(f"{BASE}/api/v1/people/PCANARYD/involvements", status=410, json=_error(410, "PERSON_ARCHIVED"), match=create)
    rsps.delete(f"{BASE}/api/v1/involvements/INV-000011", status=412, json=_error(412, "PRECONDITION_FAILED"))
    rsps.get(f"{BASE}/api/v1/involvements/INV-000011", json=_flag("INV-000011", "PCANARYC", 2), headers={"ETag": 'W/"2"'})
    rsps.delete(f"{BASE}/api/v1/involvements/INV-000011", status=204)


def _settings(tmp_path: Path, source: str | None = None) -> object:
    config = tmp_path / "flagsync.toml"
    consent_db, state_db = tmp_path / "consent.db", tmp_path / "state.db"
    source = source or f'url = "sqlite:///{consent_db}"'
    config.write_text(
        f"""
[source]
{source}
[one]
base_url = "{BASE}"
client_id = "flagsync"
client_secret = "{SECRET}"
[sync]
retry_max_delay = 0.01
[state]
url = "sqlite:///{state_db}"
[audit]
hmac_key = "{HMAC_KEY}"
""",
        encoding="utf-8",
    )
    return load_settings(config_file=config, env={})


def _assert_clean(text: str, where: str) -> None:
    """No personal canary (every one starts CANARY-), secret, token, person id or record id in `text`."""
    forbidden = [*CANARIES, *PERSON_IDS, "PCANARYE", *RECORD_IDS, "RCANARY-0006", "CANARY-"]
    found = [c for c in forbidden if c in text]
    assert not found, f"{where} contains {found}"


def test_canary_data_never_leaves(tmp_path: Path, logs: io.StringIO) -> None:
    """Requests carry only the allowed body and the create URL's person id; logs, errors and state carry nothing."""
    _create_source(tmp_path / "consent.db")
    settings = _settings(tmp_path)
    configure_logging(format="json", level="DEBUG", pseudonymizer=None, stream=logs)
    app = build_app(settings)  # type: ignore[arg-type]
    configure_logging(format="json", level="DEBUG", pseudonymizer=app.pseudonymizer, stream=logs)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        _register_one(rsps)
        report = app.service.sync(trigger=RunTrigger.OPERATOR)
        calls = list(rsps.calls)
    app.close()

    assert report.outcome is RunOutcome.CONVERGED, report.error
    assert [(c.person_id, c.reason) for c in report.person_issues] == [("PCANARYD", "PERSON_ARCHIVED")]

    create_path = re.compile(r"^/api/v1/people/(P[A-Z0-9]+)/involvements$")
    for call in calls:
        request = call.request
        url = urlsplit(request.url or "")
        match = create_path.match(url.path)
        path_without_allowed_id = create_path.sub("/api/v1/people/{id}/involvements", url.path) if match else url.path
        headers = json.dumps({k: v for k, v in request.headers.items() if k.lower() != "authorization"})
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        _assert_clean(path_without_allowed_id + "?" + url.query, f"URL of {request.method} {url.path}")
        _assert_clean(headers, f"headers of {request.method}")
        if url.path == "/connect/token":
            assert SECRET in body  # the client secret goes to the token endpoint, and only there
            continue
        _assert_clean(body, f"body of {request.method}")
        if request.method == "POST":
            assert json.loads(body) == {"involvementType": "PIAS_WORKING_WITH_FAMILY"}
            assert match is not None and match.group(1) in PERSON_IDS
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"

    log_text = logs.getvalue()
    assert '"event": "sync.completed"' in log_text.replace('"event":"', '"event": "')
    _assert_clean(log_text, "the logs")
    assert re.search(r'"person": ?"p_[0-9a-f]{16}"', log_text), "flag events carry pseudonyms"
    events = [json.loads(line) for line in log_text.splitlines()]
    retries = [e for e in events if e["event"] == "http.retry_scheduled"]
    assert retries, "the 503 was retried"
    assert all(e.get("run_id") == report.run_id for e in retries), "retries on worker threads carry the run id"

    state_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    _assert_clean(state_bytes.decode("latin-1"), "the state store")


def test_a_csv_source_and_its_saved_person_index_keep_nothing(
    tmp_path: Path, logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rows as a CSV export: after a sync and a person read, the state files (the saved index too) hold nothing."""
    monkeypatch.setattr(csv_source, "RACY_WINDOW_NS", 0)  # the file was just written: let its index be saved
    _create_source(tmp_path / "consent.db")
    with sqlite3.connect(tmp_path / "consent.db") as db, (tmp_path / "consent.csv").open("w", newline="") as handle:
        cursor = db.execute("SELECT * FROM consent_records")
        writer = csv.writer(handle)
        writer.writerow([column[0] for column in cursor.description])
        writer.writerows(["" if value is None else value for value in row] for row in cursor)
    (tmp_path / "consent.db").unlink()
    settings = _settings(tmp_path, f'kind = "csv"\npath = "{tmp_path / "consent.csv"}"')
    app = build_app(settings)  # type: ignore[arg-type]
    configure_logging(format="json", level="DEBUG", pseudonymizer=app.pseudonymizer, stream=logs)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        _register_one(rsps)
        report = app.service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED, report.error
    assert [item.record_id for item in app.source.read_person("PCANARYA", datetime.now(UTC))] == ["RCANARY-0001"]
    app.close()

    saved = tmp_path / "state.db-csv-person-index"
    assert saved.is_file()
    _assert_clean(logs.getvalue(), "the logs")
    state_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    _assert_clean(state_bytes.decode("latin-1"), "the state files and the saved person index")


def test_error_messages_from_a_failed_listing_hold_no_ids(tmp_path: Path, logs: io.StringIO) -> None:
    """A connection error whose text holds a URL with a person id reaches neither the report nor the logs."""
    _create_source(tmp_path / "consent.db")
    settings = _settings(tmp_path)
    app = build_app(settings)  # type: ignore[arg-type]
    configure_logging(format="json", level="DEBUG", pseudonymizer=app.pseudonymizer, stream=logs)
    leak = requests.ConnectionError(f"HTTPSConnectionPool: Max retries exceeded with url: {BASE}/api/v1/people/PCANARYA/x")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/connect/token", json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})
        rsps.get(f"{BASE}/api/v1/involvements", body=leak)
        report = app.service.sync(trigger=RunTrigger.OPERATOR)
    app.close()

    assert report.outcome is RunOutcome.ERROR
    assert report.error
    _assert_clean(report.error, "the run's error message")
    _assert_clean(logs.getvalue(), "the logs")
    assert "/api/v1/people/" not in logs.getvalue()
