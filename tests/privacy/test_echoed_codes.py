"""A One that echoes a person id as its error `code` cannot put that id anywhere: logs, audit trail, metrics, report.

Regression test for issue 6: the old code pattern `[A-Z][A-Z0-9_]{0,63}` let an upper-case person id through
into `flag.failed` and `http.retry_scheduled` lines, `audit_events.reason`, `flagsync audit --events` and a
`/metrics` label.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
import structlog
from prometheus_client import generate_latest

from flagsync.bootstrap import build_app
from flagsync.core.model import RunTrigger
from flagsync.demo_data import write_consent_db
from flagsync.logs import configure_logging
from flagsync.present.runs import print_report
from flagsync.settings import load_settings

BASE = "https://one.example.test"
PERSON = "P0001234"  # upper case: shaped exactly like an error code


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    yield buffer
    structlog.reset_defaults()


def test_an_echoed_person_id_as_error_code_is_never_carried(tmp_path: Path, logs: io.StringIO) -> None:
    """Every place a failure's code reaches shows UNKNOWN_CODE, and the person id appears in none of them."""
    consent = tmp_path / "consent.db"
    columns = ("record_id", "person_id", "decision", "informed", "consented_by", "recorded_at", "case_status")
    write_consent_db(consent, columns, [("R1", PERSON, "granted", "yes", "parent", "2026-10-01T10:00:00", "open")])
    config = tmp_path / "flagsync.toml"
    config.write_text(
        f'[source]\nurl = "sqlite:///{consent}"\n[one]\nbase_url = "{BASE}"\nclient_id = "c"\nclient_secret = "secret-value-1"\n'
        f'[sync]\nretry_attempts = 2\nretry_max_delay = 0.01\n[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n'
        '[audit]\nhmac_key = "0123456789abcdef-key"\n',
        encoding="utf-8",
    )
    app = build_app(load_settings(config_file=config, env={}))
    configure_logging(format="json", level="DEBUG", pseudonymizer=app.pseudonymizer, stream=logs)
    envelope = {"error": {"status": 503, "code": PERSON, "message": "x", "correlationId": "c", "details": {}}}
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.post(f"{BASE}/connect/token", json={"access_token": "tok", "token_type": "Bearer", "expires_in": 3600})
        rsps.get(f"{BASE}/api/v1/involvements", json={"items": [], "nextPageToken": None})
        create = f"{BASE}/api/v1/people/{PERSON}/involvements"
        rsps.post(create, status=503, json=envelope)
        rsps.post(create, status=503, json=envelope)
        report = app.service.sync(trigger=RunTrigger.OPERATOR)
    terminal = io.StringIO()
    print_report(report, terminal)
    metrics = generate_latest(app.metrics.registry).decode()
    events = app.state.audit_events(None, None)
    app.close()

    assert [(c.person_id, c.reason) for c in report.failed] == [(PERSON, "UNKNOWN_CODE")]
    assert [e.reason for e in events] == ["UNKNOWN_CODE"]
    assert 'reason="UNKNOWN_CODE"' in metrics
    assert PERSON not in metrics
    log_text = logs.getvalue()
    assert '"code": "UNKNOWN_CODE"' in log_text
    assert PERSON not in log_text
    state_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert PERSON.encode() not in state_bytes
    # The operator's terminal names the person (that is its job: the plan and the failed row) but not as a code.
    assert re.search(rf"add +{PERSON} +UNKNOWN_CODE", terminal.getvalue())
    assert terminal.getvalue().count(PERSON) == 2
