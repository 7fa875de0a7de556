"""Every metric the alert rules and the Grafana dashboard use is one a real `flagsync daemon` exports on /metrics."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mocks.one.control import MockControl
from mocks.one.server import start_in_thread
from tests.deploy.settings_names import ROOT
from tests.e2e.conftest import CLIENT_ID, CLIENT_SECRET, E2E, TEAM, ago, free_port, record

pytestmark = pytest.mark.e2e

#: Names Prometheus itself adds (not the daemon's).
PROMETHEUS_OWN = frozenset({"up"})
#: A metric name, optionally followed by a label matcher block.
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
#: Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})


def expressions() -> dict[str, str]:
    """Where -> PromQL, for every rule and every dashboard query (templating included)."""
    found: dict[str, str] = {}
    groups = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text(encoding="utf-8"))["groups"]
    for group in groups:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"]
    dashboard = json.loads((ROOT / "deploy/grafana/flagsync.json").read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = variable["definition"]
    return found


def used_metrics() -> dict[str, dict[str, set[str]]]:
    """Metric name -> {label: values matched with =} over every expression (PromQL functions and keywords left out)."""
    used: dict[str, dict[str, set[str]]] = {}
    for expr in expressions().values():
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        for match in SELECTOR.finditer(without_strings):
            name = match.group(1)
            if name.startswith("flagsync_") or name in PROMETHEUS_OWN:
                used.setdefault(name, {})
        for match in re.finditer(r"\b(flagsync_[a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
            for label, operator, value in MATCHER.findall(match.group(2)):
                values = used[match.group(1)].setdefault(label, set())
                if operator == "=":
                    values.add(value)
    return used


def grouping_labels() -> dict[str, set[str]]:
    """Where -> the labels an expression groups by (`by (...)`) or names in a legend (`{{label}}`)."""
    found: dict[str, set[str]] = {}
    for where, expr in expressions().items():
        found[where] = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    dashboard = json.loads((ROOT / "deploy/grafana/flagsync.json").read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] |= set(
                re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"])
            )
    return found


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[E2E]:
    with start_in_thread(clients={CLIENT_ID: (CLIENT_SECRET, TEAM)}, seed=5) as mock, MockControl(mock.url) as control:
        world = E2E(tmp_path, mock, control)
        yield world
        world.assert_private()


def scrape(port: int) -> dict[str, dict[str, set[str]]]:
    """Sample name -> {label: values seen}, from a live /metrics."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    seen: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = seen.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                labels.setdefault(label, set()).add(value)
    return seen


def test_the_expressions_use_the_metrics_the_daemon_exports(world: E2E) -> None:
    """The daemon, run through a refused token, a retried listing, a quarantine and a pending removal, exports every name used."""
    person, other = "PMETRIC01", "PMETRIC02"
    world.seed_people(person, other)
    world.add_records(record(person), record(other), {**record(other), "decision": "maybe"})  # the second quarantines
    world.faults(
        {
            "rules": [
                {"method": "POST", "path": "/connect/token", "status": 401, "times": 1},
                {"method": "GET", "path": "/api/v1/involvements", "status": 503, "retryAfter": 0, "times": 1},
            ]
        }
    )
    port = free_port()
    world.write_config(http_port=port, change_poll_interval=0.5)
    world.config.write_text(
        world.config.read_text(encoding="utf-8").replace("full_reconcile_interval = 3600", "full_reconcile_interval = 2"),
        encoding="utf-8",
    )
    daemon = world.start("daemon")
    try:
        wait_until(lambda: world.flagged() == {person}, 30, "a full reconcile after the refused token")
        # A withdrawal whose removal One fails: it stays pending, with an age.
        world.faults({"rules": [{"method": "DELETE", "path": "/api/v1/involvements/*", "status": 500, "times": 100}]})
        world.add_records(record(person, "withdrawn", recorded_at=ago(minutes=1)))
        wait_until(
            lambda: "flagsync_oldest_pending_removal_timestamp_seconds 0.0" not in metrics_text(port), 30, "a pending removal"
        )
        wait_until(
            lambda: "flagsync_runs_total{" in metrics_text(port) and "change_poll" in metrics_text(port), 30, "a change poll"
        )
        seen = scrape(port)
    finally:
        daemon.terminate()
        world.finish(daemon, logs_on_stdout=True, timeout=20)
    problems = []
    for name, matchers in sorted(used_metrics().items()):
        if name in PROMETHEUS_OWN:
            continue
        if name not in seen:
            problems.append(f"{name} is not exported")
            continue
        for label, values in matchers.items():
            if label in TARGET_LABELS:
                continue
            if label not in seen[name]:
                problems.append(f"{name} has no label {label}")
            elif not values <= seen[name][label]:
                problems.append(f"{name} never has {label} = {sorted(values - seen[name][label])}")
    all_labels = {label for labels in seen.values() for label in labels} | TARGET_LABELS | {"le"}
    for where, labels in grouping_labels().items():
        if not labels <= all_labels:
            problems.append(f"{where} groups by {sorted(labels - all_labels)}, which no metric has")
    assert not problems, problems
    assert len(used_metrics()) >= 15, "the expressions were not parsed"
    assert any(grouping_labels().values()), "the groupings were not parsed"


def metrics_text(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
