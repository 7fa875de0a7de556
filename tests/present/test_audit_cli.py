"""`flagsync audit` through `flagsync.cli.main` on a seeded SQLite state store: every format, suppressed and exact."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from flagsync.cli import main
from flagsync.core.disclosure import EXACT_NOTE, Figure, disclose
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.present.audit_report import CSV_NOTES
from tests.present.conftest import DAYS, FIRST_DAY
from tests.present.seed import Seeded

LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
RANGE = ["--since", FIRST_DAY.isoformat(), "--until", LAST_DAY.isoformat()]


def audit(config: Path, capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> str:
    code = main(["audit", "--config", str(config), *args])
    out, err = capsys.readouterr()
    assert code == expect, err
    return out if expect == 0 else err


def shown(count: int, *, exact: bool) -> int | str:
    return Figure.of(count, exact=exact).json()


@pytest.mark.parametrize("exact", [False, True], ids=["suppressed", "exact"])
def test_csv_counts_per_day_are_suppressed_unless_exact(
    seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str], exact: bool
) -> None:
    """The CSV says which counts it holds, then gives every day's count suppressed and rounded (or exact with --exact)."""
    out = audit(config, capsys, *RANGE, *(["--exact"] if exact else []))
    note, *rest = out.splitlines()
    assert note == CSV_NOTES[exact]
    rows = list(csv.DictReader(io.StringIO("\n".join(rest))))
    got = {(date.fromisoformat(r["day"]), r["action"], r["outcome"]): r["count"] for r in rows}
    assert got == {key: str(shown(n, exact=exact)) for key, n in seeded.events.items()}
    if not exact:
        assert "*" in got.values()  # the seeded history has small daily counts: the test sees suppression at work


@pytest.mark.parametrize("exact", [False, True], ids=["suppressed", "exact"])
def test_json_report_is_suppressed_unless_exact(
    seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str], exact: bool
) -> None:
    """The JSON names its disclosure mode; daily counts, weekly totals and full-run figures follow it."""
    doc = json.loads(audit(config, capsys, *RANGE, "--format", "json", *(["--exact"] if exact else [])))
    assert doc["disclosure"]["counts"] == ("exact" if exact else "suppressed")
    assert doc["period"] == "day"
    counts = {(date.fromisoformat(c["day"]), c["action"], c["outcome"]): c["count"] for c in doc["counts"]}
    assert counts == {key: shown(n, exact=exact) for key, n in seeded.events.items()}
    added = sum(
        n for (_, action, outcome), n in seeded.events.items() if action == "add" and outcome in ("ok", "already_present")
    )
    assert doc["activityTotal"]["added"] == shown(added, exact=exact)
    finished, last = seeded.full_runs[-1]
    assert doc["fullRuns"][-1]["lastFullRunAt"] == finished.isoformat()
    assert doc["fullRuns"][-1]["flagsInOne"] == shown(last["flags_in_one"], exact=exact)


@pytest.mark.parametrize("exact", [False, True], ids=["suppressed", "exact"])
def test_html_report_is_suppressed_unless_exact(
    seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str], exact: bool
) -> None:
    """The HTML report states its disclosure mode and shows the period's totals as the rule allows."""
    page = audit(config, capsys, *RANGE, "--format", "html", *(["--exact"] if exact else []))
    assert page.startswith("<!DOCTYPE html>")
    if exact:
        assert EXACT_NOTE in page and "Small numbers suppressed." not in page
    else:
        assert "Small numbers suppressed." in page and EXACT_NOTE not in page
    removed = sum(n for (_, action, outcome), n in seeded.events.items() if (action, outcome) == ("remove", "ok"))
    tile = re.search(r'<span class="label">Flags removed</span><span class="figure">([^<]+)</span>', page)
    assert tile is not None
    assert tile.group(1) == Figure.of(removed, exact=exact).text()


@pytest.mark.parametrize("fmt", ["csv", "json", "html"])
def test_no_id_of_any_kind_reaches_an_aggregate_report(
    seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str], pseudonymizer: Pseudonymizer, fmt: str
) -> None:
    """No raw person id, no person pseudonym and no run id appears in any aggregate format, even with --exact."""
    for extra in ([], ["--exact"]):
        out = audit(config, capsys, *RANGE, "--format", fmt, *extra)
        assert not [p for p in seeded.person_ids if p in out]
        assert not [p for p in seeded.person_ids if pseudonymizer.person(p) in out]
        assert not re.search(r"\bp_[0-9a-f]{16}\b|\br_[0-9a-f]{16}\b", out)
        assert not [r for r in seeded.run_ids if r in out]


def test_change_polls_do_not_count_as_flags_in_one(seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each day's figure comes from its last full run, not from the change poll that ran after it."""
    doc = json.loads(audit(config, capsys, *RANGE, "--format", "json", "--exact"))
    by_day: dict[str, int] = {}
    for finished, counts in seeded.full_runs:
        by_day[finished.date().isoformat()] = counts["flags_in_one"]
    assert {run["start"]: run["flagsInOne"] for run in doc["fullRuns"]} == by_day


def test_period_week_counts_per_monday_week(seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--period week gives one activity row per Monday-to-Sunday week, totals from the exact daily counts."""
    doc = json.loads(audit(config, capsys, *RANGE, "--format", "json", "--period", "week"))
    assert [(a["start"], a["end"]) for a in doc["activity"]] == [
        ((FIRST_DAY + timedelta(days=7 * w)).isoformat(), (FIRST_DAY + timedelta(days=7 * w + 6)).isoformat()) for w in range(3)
    ]
    weekly: dict[int, int] = defaultdict(int)
    for (day, action, outcome), n in seeded.events.items():
        if (action, outcome) == ("remove", "ok"):
            weekly[(day - FIRST_DAY).days // 7] += n
    assert [a["removed"] for a in doc["activity"]] == [shown(weekly[w], exact=False) for w in range(3)]


def test_output_writes_the_file_and_nothing_to_stdout(
    seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--output FILE puts the report in the file and prints nothing on stdout."""
    target = tmp_path / "report.html"
    assert audit(config, capsys, *RANGE, "--format", "html", "--output", str(target)) == ""
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_events_rows_are_pseudonymous_and_not_suppressed(
    seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--events lists every event with a pseudonym, one row each: rows are not counts, so nothing is suppressed."""
    rows = list(csv.DictReader(io.StringIO(audit(config, capsys, *RANGE, "--events"))))
    assert len(rows) == sum(seeded.events.values())
    assert all(re.fullmatch(r"p_[0-9a-f]{16}", r["person"]) for r in rows)
    assert not [p for p in seeded.person_ids if any(p in r.values() for r in rows)]


def test_events_cannot_be_an_html_report(seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--events with --format html is refused with exit 1 and a message saying why."""
    err = audit(config, capsys, "--events", "--format", "html", expect=1)
    assert "counts only" in err


def test_a_backwards_range_is_refused(seeded: Seeded, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since after --until exits 1 and says so."""
    err = audit(config, capsys, "--since", "2026-10-10", "--until", "2026-10-01", expect=1)
    assert "--since is after --until" in err


def test_an_empty_store_gives_an_empty_but_valid_report(empty_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With nothing recorded yet every format still renders, with no counts and no full runs."""
    doc = json.loads(audit(empty_config, capsys, "--format", "json"))
    assert (doc["counts"], doc["fullRuns"]) == ([], [])
    assert "No data for this period" in audit(empty_config, capsys, "--format", "html")
    assert audit(empty_config, capsys).splitlines()[1:] == ["day,action,outcome,count"]


def test_disclosure_of_the_seed_is_not_trivial(seeded: Seeded) -> None:
    """The seeded history holds suppressed, rounded and zero-free counts alike, so the tests above exercise all of them."""
    values = [disclose(n) for n in seeded.events.values()]
    assert None in values
    assert any(v is not None and v >= 10 for v in values)
