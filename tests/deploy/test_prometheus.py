"""The alert rules: promtool checks and unit-tests them; every alert is tested and has its runbook section."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.settings_names import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RUNBOOK = ROOT / "docs" / "runbook.md"


def promtool() -> str:
    """promtool's path; skip where it is missing, fail instead when CI_REQUIRE_PROMTOOL is set (scripts/test sets it)."""
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI_REQUIRE_PROMTOOL"):
            pytest.fail(message + " and CI_REQUIRE_PROMTOOL is set")
        pytest.skip(message)
    return found


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    """`promtool check rules` accepts alerts.yaml (syntax, PromQL, templates)."""
    done = subprocess.run(
        [promtool(), "check", "rules", "alerts.yaml"], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules alerts_test.yaml`: each alert fires on its cases, at the right time, and not on the calm ones."""
    done = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yaml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """alerts_test.yaml has, for every alert, a case where it fires and one where it stays quiet."""
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yaml").read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in alerts():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} is never expected to fire"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} is never expected to stay quiet"


def anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings in a Markdown text."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def test_every_alert_links_to_its_runbook_section() -> None:
    """Each alert has a severity, a summary, and a runbook annotation naming a heading that exists in docs/runbook.md."""
    sections = anchors(RUNBOOK.read_text(encoding="utf-8"))
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert path == "docs/runbook.md" and anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in sections, f"docs/runbook.md has no section for {rule['alert']}"
