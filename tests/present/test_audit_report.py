"""The audit report's model and renderers, data in and text out: periods, totals, snapshots, suppression and self-containment."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from flagsync.core.disclosure import EXACT_NOTE, RULE, Figure
from flagsync.core.model import RunOutcome, RunTrigger
from flagsync.ports import RunRecord
from flagsync.present.audit_html import render_html
from flagsync.present.audit_report import (
    Activity,
    Bucket,
    Period,
    activity_of,
    buckets,
    build_report,
    choose_period,
    render_csv,
    render_json,
    report_document,
)

GENERATED = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
MON = date(2026, 11, 2)  # a Monday


def run(finished: datetime | None, flags: int, quarantined: int = 0, unmatched: int = 0, **kw: object) -> RunRecord:
    outcome = kw.get("outcome", RunOutcome.CONVERGED)
    assert outcome is None or isinstance(outcome, RunOutcome)
    counts = {"flags_in_one": flags, "quarantined": quarantined, "unmatched": unmatched}
    return RunRecord(
        run_id=f"run{flags}-{finished}",
        trigger=RunTrigger.SCHEDULED_FULL,
        started_at=(finished or GENERATED) - timedelta(minutes=1),
        finished_at=finished,
        outcome=outcome,
        counts=counts,
    )


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------
# Periods


@pytest.mark.parametrize(
    ("since", "until", "period", "expected"),
    [
        pytest.param(MON, MON + timedelta(days=2), Period.DAY, [(2, 2), (3, 3), (4, 4)], id="days"),
        pytest.param(MON, MON + timedelta(days=13), Period.WEEK, [(2, 8), (9, 15)], id="whole-weeks"),
        pytest.param(MON + timedelta(days=2), MON + timedelta(days=9), Period.WEEK, [(4, 8), (9, 11)], id="cut-weeks"),
        pytest.param(MON + timedelta(days=6), MON + timedelta(days=6), Period.WEEK, [(8, 8)], id="a-sunday"),
    ],
)
def test_buckets_are_days_or_monday_weeks_cut_to_the_range(
    since: date, until: date, period: Period, expected: list[tuple[int, int]]
) -> None:
    """Periods cover the range exactly: single days, or Monday-to-Sunday weeks cut at both ends."""
    assert [(b.start.day, b.end.day) for b in buckets(since, until, period)] == expected


@pytest.mark.parametrize(("days", "period"), [(1, Period.DAY), (31, Period.DAY), (32, Period.WEEK), (365, Period.WEEK)])
def test_the_period_is_chosen_by_the_length_of_the_range(days: int, period: Period) -> None:
    """Up to 31 days the report counts per day, beyond that per week."""
    assert choose_period(MON, MON + timedelta(days=days - 1)) is period


@pytest.mark.parametrize(
    ("bucket", "text"),
    [
        (Bucket(date(2026, 11, 3), date(2026, 11, 3)), "3 Nov 2026"),
        (Bucket(date(2026, 11, 2), date(2026, 11, 8)), "2\u20138 Nov 2026"),
        (Bucket(date(2026, 10, 26), date(2026, 11, 1)), "26 Oct \u2013 1 Nov 2026"),
        (Bucket(date(2026, 12, 28), date(2027, 1, 3)), "28 Dec 2026 \u2013 3 Jan 2027"),
    ],
)
def test_period_labels_read_as_dates(bucket: Bucket, text: str) -> None:
    """A period is labelled as a day or a date range a person reads at a glance."""
    assert bucket.long() == text


@pytest.mark.parametrize(
    ("action", "outcome", "activity"),
    [
        ("add", "ok", Activity.ADDED),
        ("add", "already_present", Activity.ADDED),
        ("remove", "ok", Activity.REMOVED),
        ("add", "failed", Activity.FAILED),
        ("remove", "failed", Activity.FAILED),
        ("hold", "held", Activity.HELD),
        ("add", "person_issue", Activity.REFUSED),
        ("quarantine", "noted", None),
    ],
)
def test_audit_events_count_in_one_activity_column(action: str, outcome: str, activity: Activity | None) -> None:
    """Each (action, outcome) pair of the audit trail lands in one activity column, or none."""
    assert activity_of(action, outcome) is activity


# ----------------------------------------------------------------------------------------------
# The model


def test_totals_come_from_exact_counts_then_are_suppressed_themselves() -> None:
    """Three days of 3 adds each show as * each, but the week's total of 9 shows as 10."""
    counts = [(MON + timedelta(days=i), "add", "ok", 3) for i in range(3)]
    report = build_report(counts, [], since=MON, until=MON + timedelta(days=6), generated_at=GENERATED, period=Period.WEEK)

    assert [row.count for row in report.counts] == [Figure(None)] * 3
    [week] = report.activity
    assert week.figures[Activity.ADDED] == Figure(10)
    assert report.activity_total.figures[Activity.ADDED] == Figure(10)
    assert [row.count for row in report.period_counts] == [Figure(10)]


def test_period_counts_list_adds_before_removals_then_anything_else() -> None:
    """Within a period the detail rows follow a reader's order: adds, failures and refusals, removals, holds, then others."""
    counts = [
        (MON, "remove", "ok", 1),
        (MON, "hold", "held", 1),
        (MON, "zap", "odd", 1),
        (MON, "add", "failed", 1),
        (MON, "add", "ok", 1),
    ]
    report = build_report(counts, [], since=MON, until=MON, generated_at=GENERATED)
    assert [(r.action, r.outcome) for r in report.period_counts] == [
        ("add", "ok"),
        ("add", "failed"),
        ("remove", "ok"),
        ("hold", "held"),
        ("zap", "odd"),
    ]


def test_exact_reports_show_every_count_as_it_is() -> None:
    """With exact=True the daily counts, period counts and totals are the true numbers."""
    counts = [(MON, "add", "ok", 3), (MON + timedelta(days=1), "add", "ok", 4), (MON, "remove", "ok", 1)]
    report = build_report(
        counts, [run(at(MON), 2, 1, 0)], since=MON, until=MON + timedelta(days=6), generated_at=GENERATED, exact=True
    )

    assert [row.count.value for row in report.counts] == [3, 1, 4]
    assert report.activity_total.figures[Activity.ADDED] == Figure(7)
    assert report.activity_total.figures[Activity.REMOVED] == Figure(1)
    snapshot = report.snapshots[0]
    assert snapshot is not None
    assert (snapshot.flags_in_one, snapshot.quarantined) == (Figure(2), Figure(1))


def test_each_period_shows_its_last_usable_full_run() -> None:
    """A period's snapshot is its last full run that read both sides; errors, interruptions, runs without figures are skipped."""
    runs = [
        run(at(MON, 9), 41, 3, 9),
        run(at(MON, 18), 52, 8, 2),
        run(at(MON, 20), 0, outcome=RunOutcome.ERROR),  # listed nothing
        run(at(MON, 21), 0, outcome=RunOutcome.INTERRUPTED),  # perhaps stopped before listing
        run(at(MON, 23), 0, outcome=RunOutcome.ABANDONED),
        RunRecord("old", RunTrigger.OPERATOR, at(MON, 22), at(MON, 22), RunOutcome.CONVERGED, {"adds": 1}),
        run(at(MON + timedelta(days=2)), 1000),
    ]
    report = build_report([], runs, since=MON, until=MON + timedelta(days=2), generated_at=GENERATED)

    first, second, third = report.snapshots
    assert first is not None and third is not None
    assert (first.taken_at, first.flags_in_one, first.quarantined, first.unmatched) == (
        at(MON, 18),
        Figure(50),
        Figure(10),
        Figure(None),
    )
    assert second is None
    assert third.flags_in_one == Figure(1000)
    assert report.latest == third


def test_an_open_range_runs_from_the_first_data_day_to_today() -> None:
    """Without since and until the report starts on the first day with data and ends on the day it is made."""
    first = GENERATED.date() - timedelta(days=10)
    report = build_report(
        [(first + timedelta(days=2), "add", "ok", 9)], [run(at(first), 20)], since=None, until=None, generated_at=GENERATED
    )

    assert (report.since, report.until, report.period) == (first, GENERATED.date(), Period.DAY)
    assert len(report.activity) == 11


def test_an_empty_store_gives_a_one_day_report() -> None:
    """With no data and no range the report covers the day it is made, with nothing in it."""
    report = build_report([], [], since=None, until=None, generated_at=GENERATED)

    assert (report.since, report.until) == (GENERATED.date(), GENERATED.date())
    assert report.snapshots == (None,)
    assert report.latest is None


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    """A since after the until is a ValueError naming both days."""
    with pytest.raises(ValueError, match="2026-12-05"):
        build_report([], [], since=date(2026, 12, 5), until=None, generated_at=GENERATED)


# ----------------------------------------------------------------------------------------------
# CSV and JSON


def _small_report(*, exact: bool) -> str:
    counts = [(MON, "add", "ok", 2), (MON, "remove", "ok", 12)]
    report = build_report(counts, [run(at(MON), 33, 1, 0)], since=MON, until=MON, generated_at=GENERATED, exact=exact)
    return render_csv(report)


@pytest.mark.parametrize(
    ("exact", "note", "values"),
    [
        (
            False,
            "# suppressed counts: 1 to 7 shown as *; every other count rounded to the nearest 5 (NHS Digital disclosure control)",
            ["*", "10"],
        ),
        (True, "# exact counts: no small-number suppression; for the data protection officer only", ["2", "12"]),
    ],
)
def test_csv_starts_with_a_note_then_the_daily_counts(exact: bool, note: str, values: list[str]) -> None:
    """The CSV opens with one comma-free line saying whether counts are suppressed or exact; the rows follow under the header."""
    first, *rest = _small_report(exact=exact).splitlines()
    assert first == note
    assert "," not in first
    rows = list(csv.reader(io.StringIO("\n".join(rest))))
    assert rows[0] == ["day", "action", "outcome", "count"]
    assert [row[3] for row in rows[1:]] == values


def test_json_carries_the_disclosure_mode_and_every_table() -> None:
    """The JSON document names its disclosure mode and holds counts, activity, totals and full-run figures, suppressed."""
    counts = [(MON, "add", "ok", 5), (MON + timedelta(days=1), "add", "ok", 5), (MON, "remove", "ok", 30)]
    report = build_report(counts, [run(at(MON), 83, 7, 13)], since=MON, until=MON + timedelta(days=1), generated_at=GENERATED)
    doc = json.loads(render_json(report))

    assert doc["disclosure"] == {"counts": "suppressed", "note": RULE, "suppressedAs": "*"}
    assert [c["count"] for c in doc["counts"]] == ["*", 30, "*"]
    assert doc["activityTotal"]["added"] == 10
    assert doc["fullRuns"] == [
        {
            "start": "2026-11-02",
            "end": "2026-11-02",
            "lastFullRunAt": at(MON).isoformat(),
            "flagsInOne": 85,
            "quarantined": "*",
            "unmatched": 15,
        }
    ]
    assert report_document(report) == doc


# ----------------------------------------------------------------------------------------------
# HTML


def _html(*, exact: bool = False, small: int = 3) -> str:
    counts = [(MON, "add", "ok", small), (MON + timedelta(days=8), "remove", "ok", 9)]
    runs = [run(at(MON + timedelta(days=i)), 80 + i, small, 12) for i in range(5)]
    report = build_report(counts, runs, since=MON, until=MON + timedelta(days=13), generated_at=GENERATED, exact=exact)
    return render_html(report)


def test_html_states_the_period_the_date_made_and_the_rule() -> None:
    """The page names its period, when it was generated and the suppression rule."""
    page = _html()
    assert "2 Nov 2026 to 15 Nov 2026" in page
    assert "30 Nov 2026 09:15 UTC" in page
    assert RULE.replace("'", "&#x27;") in page
    assert EXACT_NOTE not in page


def test_exact_html_says_so_in_a_warning() -> None:
    """An exact report carries the data protection officer's warning and not the suppression rule."""
    page = _html(exact=True)
    assert 'class="banner exact"' in page
    assert EXACT_NOTE in page
    assert "Small numbers suppressed." not in page


def test_small_counts_leave_no_trace_in_the_html() -> None:
    """Reports whose small counts (and totals of them) differ, 3 or 6, render to the same page: nothing shows the true value."""
    assert _html(small=3) == _html(small=6)
    assert _html(small=3, exact=True) != _html(small=6, exact=True)


def test_html_is_self_contained() -> None:
    """The page fetches nothing: no http(s) address, no script, no link, no src, no CSS import or external url()."""
    page = _html()
    assert not re.search(r"https?://", page)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert not re.search(r"\bsrc\s*=", page)
    assert "@import" not in page
    assert re.findall(r"url\(([^)]*)\)", page) and all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", page))


def test_html_has_three_titled_charts_and_printable_css() -> None:
    """Three inline SVG charts each carry an image role, a title and a description; the CSS has print rules."""
    page = _html()
    charts = re.findall(r'<svg class="chart" id="([^"]+)"[^>]*role="img"[^>]*aria-labelledby="([^"]+)"', page)
    assert [c for c, _ in charts] == ["chart-flags", "chart-activity", "chart-records"]
    for chart_id, labelled_by in charts:
        assert labelled_by == f"{chart_id}-title {chart_id}-desc"
        assert f'<title id="{chart_id}-title">' in page and f'<desc id="{chart_id}-desc">' in page
    assert "@media print" in page and "@page" in page
