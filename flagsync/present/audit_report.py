"""The anonymised activity report of `flagsync audit`: built from the audit trail and run history, shown as CSV, JSON or HTML.

`build_report` is pure: exact counts in, a report out whose every figure has already been through
small-number suppression (unless `exact`), totals included, so no renderer can show an exact
small number by mistake. The HTML is one self-contained printable page (inline CSS and SVG, no
script, nothing fetched) for a manager; the CSV and JSON carry the same figures for machines.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from html import escape
from typing import Any

from flagsync.core.disclosure import EXACT_NOTE, LARGEST_SUPPRESSED, ROUNDING_BASE, RULE, SUPPRESSED, Figure
from flagsync.core.model import RunOutcome
from flagsync.ports import RunRecord
from flagsync.present.charts import Chart, Series, bar_chart, line_chart

_EN_DASH = "\u2013"

#: Ranges up to this many days are counted per day by default; longer ones per week.
DAILY_UP_TO_DAYS = 31


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"


def choose_period(since: date, until: date) -> Period:
    """Per day for ranges up to `DAILY_UP_TO_DAYS` days, per week beyond."""
    return Period.DAY if (until - since).days + 1 <= DAILY_UP_TO_DAYS else Period.WEEK


@dataclass(frozen=True, slots=True)
class Bucket:
    """One period of the report: a day, or a Monday-to-Sunday week cut to the report's range."""

    start: date
    end: date

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def short(self) -> str:
        """For chart axes: the first day, e.g. ``3 Nov``."""
        return f"{self.start.day} {self.start:%b}"

    def long(self) -> str:
        """For tables: ``3 Nov 2026``, or a range with an en dash: ``3\u20139 Nov 2026``, ``28 Oct \u2013 3 Nov 2026``."""
        if self.start == self.end:
            return _day(self.start)
        if self.start.year != self.end.year:
            return f"{_day(self.start)} {_EN_DASH} {_day(self.end)}"
        if self.start.month != self.end.month:
            return f"{self.start.day} {self.start:%b} {_EN_DASH} {_day(self.end)}"
        return f"{self.start.day}{_EN_DASH}{_day(self.end)}"


def buckets(since: date, until: date, period: Period) -> list[Bucket]:
    """The report's periods from `since` to `until` (inclusive), weeks starting on Monday."""
    result: list[Bucket] = []
    start = since
    while start <= until:
        end = start if period is Period.DAY else min(start + timedelta(days=6 - start.weekday()), until)
        result.append(Bucket(start, end))
        start = end + timedelta(days=1)
    return result


# ----------------------------------------------------------------------------------------------
# What the audit trail's (action, outcome) pairs mean


class Activity(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    FAILED = "failed"
    HELD = "held"
    REFUSED = "refused"


#: The column headings of the activity table, in order.
ACTIVITY_HEADINGS = {
    Activity.ADDED: "Flags added",
    Activity.REMOVED: "Flags removed",
    Activity.FAILED: "Failed writes (retried)",
    Activity.HELD: "Removals held",
    Activity.REFUSED: "Refused by One",
}

_DESCRIPTIONS = {
    ("add", "ok"): "flag added",
    ("add", "already_present"): "flag added (One already had it)",
    ("add", "failed"): "add failed (retried)",
    ("add", "person_issue"): "add refused by One",
    ("remove", "ok"): "flag removed",
    ("remove", "failed"): "removal failed (retried)",
    ("hold", "held"): "removal held by the guard",
}


def _rank(action: str, outcome: str) -> tuple[int, str, str]:
    """Known events in the order of `_DESCRIPTIONS` (adds, then removals), any other after them."""
    order = list(_DESCRIPTIONS)
    return (order.index((action, outcome)) if (action, outcome) in _DESCRIPTIONS else len(order), action, outcome)


def activity_of(action: str, outcome: str) -> Activity | None:
    """Which column of the activity table an audit event counts in (None: in none)."""
    if outcome == "failed":
        return Activity.FAILED
    if outcome == "person_issue":
        return Activity.REFUSED
    if action == "add" and outcome in ("ok", "already_present"):
        return Activity.ADDED
    if action == "remove" and outcome == "ok":
        return Activity.REMOVED
    if action == "hold":
        return Activity.HELD
    return None


def describe(action: str, outcome: str) -> str:
    """An audit event's action and outcome in words."""
    return _DESCRIPTIONS.get((action, outcome), f"{action} {outcome}".replace("_", " "))


# ----------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True, slots=True)
class CountRow:
    """Audit events on one UTC day with one action and outcome."""

    day: date
    action: str
    outcome: str
    count: Figure


@dataclass(frozen=True, slots=True)
class PeriodCountRow:
    """Audit events in one period with one action and outcome."""

    bucket: Bucket
    action: str
    outcome: str
    count: Figure


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """Flag activity in one period (or over the whole report, for the totals)."""

    bucket: Bucket
    figures: dict[Activity, Figure]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the last full run of a period found: flags in One, quarantined and unmatched records."""

    bucket: Bucket
    taken_at: datetime
    flags_in_one: Figure
    quarantined: Figure
    unmatched: Figure


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Every figure of the report, already suppressed and rounded unless `exact`."""

    since: date
    until: date
    period: Period
    generated_at: datetime
    exact: bool
    counts: tuple[CountRow, ...]  # per UTC day
    period_counts: tuple[PeriodCountRow, ...]  # the same, per period
    activity: tuple[ActivityRow, ...]
    activity_total: ActivityRow
    snapshots: tuple[Snapshot | None, ...]  # one per period; None: no full run finished in it

    @property
    def buckets(self) -> list[Bucket]:
        return [row.bucket for row in self.activity]

    @property
    def latest(self) -> Snapshot | None:
        return next((s for s in reversed(self.snapshots) if s is not None), None)

    @property
    def note(self) -> str:
        return EXACT_NOTE if self.exact else RULE

    @property
    def disclosure(self) -> str:
        return "exact" if self.exact else "suppressed"


_SNAPSHOT_KEYS = ("flags_in_one", "quarantined", "unmatched")

#: Outcomes a run reaches only after reading both sides whole, so that its counts describe the source and One.
#: An error or interruption can come before the reading is done, leaving counts of nothing; those runs are skipped.
PLANNED_OUTCOMES = frozenset({RunOutcome.CONVERGED, RunOutcome.CHANGES_FAILED, RunOutcome.HELD})


def build_report(
    counts: Iterable[tuple[date, str, str, int]],
    runs: Iterable[RunRecord],
    *,
    since: date | None,
    until: date | None,
    generated_at: datetime,
    period: Period | None = None,
    exact: bool = False,
) -> AuditReport:
    """The report on `counts` (audit_counts rows) and `runs` (full runs), from `since` to `until` inclusive.

    An open `since` starts at the first day with data, an open `until` ends on the day of
    `generated_at` (both UTC). `period` None chooses by the range's length. Only runs that ended
    in one of `PLANNED_OUTCOMES` with every figure recorded make the snapshots: an error or an
    interruption may have come before anything was listed.
    Raises ValueError when the range starts after it ends.
    """
    count_rows = sorted(counts)
    usable = [
        r
        for r in runs
        if r.finished_at is not None and r.outcome in PLANNED_OUTCOMES and all(k in r.counts for k in _SNAPSHOT_KEYS)
    ]
    end = until or generated_at.date()
    if since is None:
        days = [d for d, _, _, _ in count_rows] + [r.finished_at.date() for r in usable if r.finished_at is not None]
        since = min([d for d in days if d <= end], default=end)
    if since > end:
        raise ValueError(f"the report would start ({since}) after it ends ({end})")
    period = period or choose_period(since, end)
    periods = buckets(since, end, period)

    def shown(n: int) -> Figure:
        return Figure.of(n, exact=exact)

    exact_activity: list[dict[Activity, int]] = [defaultdict(int) for _ in periods]
    total: dict[Activity, int] = defaultdict(int)
    per_period: dict[tuple[int, str, str], int] = defaultdict(int)
    kept: list[CountRow] = []
    for day, action, outcome, n in count_rows:
        index = _bucket_index(periods, day)
        if index is None:
            continue
        kept.append(CountRow(day, action, outcome, shown(n)))
        per_period[index, action, outcome] += n
        kind = activity_of(action, outcome)
        if kind is not None:
            exact_activity[index][kind] += n
            total[kind] += n

    latest: list[RunRecord | None] = [None for _ in periods]
    for run in sorted(usable, key=lambda r: (r.finished_at, r.run_id)):
        assert run.finished_at is not None  # filtered above; says so to the type checker
        index = _bucket_index(periods, run.finished_at.date())
        if index is not None:
            latest[index] = run

    snapshots = tuple(
        None
        if run is None or run.finished_at is None
        else Snapshot(
            bucket,
            run.finished_at,
            shown(run.counts["flags_in_one"]),
            shown(run.counts["quarantined"]),
            shown(run.counts["unmatched"]),
        )
        for bucket, run in zip(periods, latest, strict=True)
    )
    return AuditReport(
        since=since,
        until=end,
        period=period,
        generated_at=generated_at,
        exact=exact,
        counts=tuple(kept),
        period_counts=tuple(
            PeriodCountRow(periods[index], action, outcome, shown(n))
            for (index, action, outcome), n in sorted(per_period.items(), key=lambda item: (item[0][0], _rank(*item[0][1:])))
        ),
        activity=tuple(
            ActivityRow(bucket, {kind: shown(tally[kind]) for kind in Activity})
            for bucket, tally in zip(periods, exact_activity, strict=True)
        ),
        # Totals from the exact counts, then suppressed or rounded themselves.
        activity_total=ActivityRow(Bucket(since, end), {kind: shown(total[kind]) for kind in Activity}),
        snapshots=snapshots,
    )


def _bucket_index(periods: Sequence[Bucket], day: date) -> int | None:
    """The index of the period holding `day`, or None outside the report."""
    index = bisect_right([b.start for b in periods], day) - 1
    return index if index >= 0 and periods[index].contains(day) else None


# ----------------------------------------------------------------------------------------------
# CSV and JSON


COUNT_HEADERS = ["day", "action", "outcome", "count"]


#: The first line of a CSV report; without commas, so that a reader that does not skip ``#`` lines sees one field.
CSV_NOTES = {
    False: (
        f"# suppressed counts: 1 to {LARGEST_SUPPRESSED} shown as {SUPPRESSED}; every other count rounded to the nearest "
        f"{ROUNDING_BASE} (NHS Digital disclosure control)"
    ),
    True: "# exact counts: no small-number suppression; for the data protection officer only",
}


def render_csv(report: AuditReport) -> str:
    """The daily counts as CSV, after one ``#`` line saying whether they are suppressed (and how) or exact."""
    out = io.StringIO()
    out.write(CSV_NOTES[report.exact] + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COUNT_HEADERS)
    writer.writerows([row.day.isoformat(), row.action, row.outcome, row.count.json()] for row in report.counts)
    return out.getvalue()


def report_document(report: AuditReport) -> dict[str, Any]:
    """The report as a JSON-ready document; a suppressed count is the string ``*``."""

    def bucket(b: Bucket) -> dict[str, str]:
        return {"start": b.start.isoformat(), "end": b.end.isoformat()}

    def activity(row: ActivityRow) -> dict[str, Any]:
        return {**bucket(row.bucket), **{kind.value: figure.json() for kind, figure in row.figures.items()}}

    return {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "period": report.period.value,
        "generatedAt": report.generated_at.isoformat(),
        "disclosure": {"counts": report.disclosure, "note": report.note, "suppressedAs": SUPPRESSED},
        "counts": [
            {"day": row.day.isoformat(), "action": row.action, "outcome": row.outcome, "count": row.count.json()}
            for row in report.counts
        ],
        "activity": [activity(row) for row in report.activity],
        "activityTotal": activity(report.activity_total),
        "fullRuns": [
            {
                **bucket(s.bucket),
                "lastFullRunAt": s.taken_at.isoformat(),
                "flagsInOne": s.flags_in_one.json(),
                "quarantined": s.quarantined.json(),
                "unmatched": s.unmatched.json(),
            }
            for s in report.snapshots
            if s is not None
        ],
    }


def render_json(report: AuditReport) -> str:
    return json.dumps(report_document(report), indent=2) + "\n"


# ----------------------------------------------------------------------------------------------
# HTML


def render_html(report: AuditReport) -> str:
    """One self-contained, printable HTML page: summary, three charts, the tables, and the notes."""
    per = "day" if report.period is Period.DAY else "week"
    labels = [b.short() for b in report.buckets]
    span = f"{_day(report.since)} to {_day(report.until)}"
    days = (report.until - report.since).days + 1
    latest = report.latest
    x_title = "day" if report.period is Period.DAY else "week beginning"

    flags_chart = line_chart(
        Chart(
            "chart-flags",
            f"Flags in One, at the last full run of each {per}",
            f"Line chart of how many families carry the 'PIAS is working with this family' flag in One, per {per}, "
            f"{span}. {_latest_sentence(latest)} The table 'Flags in One and records needing attention' gives every figure.",
            labels,
            [Series("Flags in One", [s.flags_in_one if s else None for s in report.snapshots])],
            "flags",
            x_title,
        )
    )
    activity_chart = bar_chart(
        Chart(
            "chart-activity",
            f"Flags added and removed per {per}",
            f"Bar chart of flags added and flags removed in One per {per}, {span}. Over the whole period: "
            f"{report.activity_total.figures[Activity.ADDED].text()} added and "
            f"{report.activity_total.figures[Activity.REMOVED].text()} removed. "
            f"The table 'Activity per {per}' gives every figure.",
            labels,
            [
                Series("Added", [row.figures[Activity.ADDED] for row in report.activity]),
                Series("Removed", [row.figures[Activity.REMOVED] for row in report.activity]),
            ],
            "flags",
            x_title,
        )
    )
    records_chart = line_chart(
        Chart(
            "chart-records",
            f"Quarantined and unmatched consent records, at the last full run of each {per}",
            f"Line chart of consent records flagsync could not use, per {per}, {span}: quarantined records (unreadable "
            "or invalid) and unmatched records (no One person id). The table 'Flags in One and records needing "
            "attention' gives every figure.",
            labels,
            [
                Series("Quarantined", [s.quarantined if s else None for s in report.snapshots]),
                Series("Unmatched", [s.unmatched if s else None for s in report.snapshots]),
            ],
            "records",
            x_title,
        )
    )

    if report.exact:
        banner = f'<p class="banner exact"><strong>Exact counts.</strong> {escape(EXACT_NOTE)}</p>'
    else:
        banner = f'<p class="banner"><strong>Small numbers suppressed.</strong> {escape(RULE)}</p>'
    total = report.activity_total.figures
    tiles = [
        ("Flags in One", latest.flags_in_one.text() if latest else _EN_DASH, _as_of(latest)),
        ("Flags added", total[Activity.ADDED].text(), "over the period"),
        ("Flags removed", total[Activity.REMOVED].text(), "over the period"),
        ("Quarantined records", latest.quarantined.text() if latest else _EN_DASH, _as_of(latest)),
        ("Unmatched records", latest.unmatched.text() if latest else _EN_DASH, _as_of(latest)),
    ]
    title = f"flagsync activity report, {span}"
    body = [
        "<header>",
        '<p class="kicker">flagsync · consent-led involvement flags in One</p>',
        "<h1>Activity report</h1>",
        '<dl class="meta">',
        f"<dt>Period</dt><dd>{escape(span)} ({days} day{'s' if days != 1 else ''}, counted per {per}; UTC)</dd>",
        f"<dt>Generated</dt><dd>{escape(report.generated_at.strftime('%d %b %Y %H:%M UTC').lstrip('0'))}</dd>",
        "<dt>Counts</dt><dd>"
        + ("exact (not for circulation)" if report.exact else "small numbers suppressed, others rounded to 5")
        + "</dd>",
        "</dl>",
        banner,
        "</header>",
        '<section class="tiles" aria-label="Summary">',
        *(
            f'<div class="tile"><span class="label">{escape(name)}</span><span class="figure">{escape(value)}</span>'
            f'<span class="sub">{escape(sub)}</span></div>'
            for name, value, sub in tiles
        ),
        "</section>",
        '<section class="chart-block">',
        "<h2>Flags in One</h2>",
        "<p>How many families carry the flag, as listed by the last full run of each "
        f"{per}. A gap means no full run finished that {per}.</p>",
        f"<figure>{flags_chart}</figure>",
        "</section>",
        '<section class="chart-block">',
        f"<h2>Flags added and removed per {per}</h2>",
        "<p>Flags put on after consent was recorded, and taken off when consent no longer holds.</p>",
        f"<figure>{activity_chart}</figure>",
        "</section>",
        '<section class="chart-block">',
        "<h2>Consent records needing attention</h2>",
        "<p>Quarantined records could not be read safely (missing or invalid fields); unmatched records have no "
        "One person id. Neither leads to a flag until the record is fixed.</p>",
        f"<figure>{records_chart}</figure>",
        "</section>",
        '<section class="tables">',
        f"<h2>Activity per {per}</h2>",
        _activity_table(report),
        "<h2>Flags in One and records needing attention</h2>",
        _snapshot_table(report),
        f"<h2>All counts per {per}, by action and outcome</h2>",
        _counts_table(report),
        "</section>",
        "<footer>",
        "<h2>Notes</h2>",
        "<ul>",
        f"<li>{escape(report.note)}</li>",
        "<li>Figures marked * are between 1 and 7. In the charts each is drawn as the same hatched band over the whole "
        "range 1 to 7, never at its true value.</li>"
        if not report.exact
        else "",
        "<li>Adds, removals, failures, holds and refusals come from flagsync's audit trail. Flags in One, quarantined "
        "and unmatched records are the figures each full run records (flags in One as listed at the start of the run).</li>",
        "<li>Failed writes are retried automatically. Removals are held when an unusually large number would go at "
        "once, until an operator confirms them. One refuses a flag for people it no longer shows (e.g. archived or "
        "merged records).</li>",
        "<li>The report names no person and no record: it holds counts only.</li>",
        "<li>Disclosure control follows NHS Digital, “Disclosure control methodology for Hospital Episode Statistics "
        "(HES) and Emergency Care Data Set (ECDS)”, 2018.</li>",
        "</ul>",
        "</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en-GB">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )


def _activity_table(report: AuditReport) -> str:
    head = "".join(f'<th scope="col" class="num">{escape(h)}</th>' for h in ACTIVITY_HEADINGS.values())
    rows = [
        f'<tr><th scope="row">{escape(row.bucket.long())}</th>'
        + "".join(f'<td class="num">{row.figures[kind].text()}</td>' for kind in ACTIVITY_HEADINGS)
        + "</tr>"
        for row in report.activity
    ]
    total = report.activity_total
    foot = (
        '<tr><th scope="row">Whole period</th>'
        + "".join(f'<td class="num">{total.figures[kind].text()}</td>' for kind in ACTIVITY_HEADINGS)
        + "</tr>"
    )
    return (
        f'<table><thead><tr><th scope="col">{_period_heading(report)}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot>{foot}</tfoot></table>"
    )


def _snapshot_table(report: AuditReport) -> str:
    rows = []
    for bucket, snap in zip(report.buckets, report.snapshots, strict=True):
        if snap is None:
            cells = '<td class="muted" colspan="4">no full run finished</td>'
        else:
            cells = (
                f"<td>{escape(snap.taken_at.strftime('%d %b %H:%M').lstrip('0'))}</td>"
                f'<td class="num">{snap.flags_in_one.text()}</td><td class="num">{snap.quarantined.text()}</td>'
                f'<td class="num">{snap.unmatched.text()}</td>'
            )
        rows.append(f'<tr><th scope="row">{escape(bucket.long())}</th>{cells}</tr>')
    return (
        f'<table><thead><tr><th scope="col">{_period_heading(report)}</th>'
        '<th scope="col">Last full run (UTC)</th><th scope="col" class="num">Flags in One</th>'
        '<th scope="col" class="num">Quarantined</th><th scope="col" class="num">Unmatched</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _counts_table(report: AuditReport) -> str:
    if not report.period_counts:
        return '<p class="muted">No audit events in this period.</p>'
    rows = [
        f'<tr><th scope="row">{escape(row.bucket.long())}</th><td>{escape(describe(row.action, row.outcome))}</td>'
        f'<td class="num">{row.count.text()}</td></tr>'
        for row in report.period_counts
    ]
    return (
        f'<table class="detail"><thead><tr><th scope="col">{_period_heading(report)}</th><th scope="col">What happened</th>'
        f'<th scope="col" class="num">Count</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _period_heading(report: AuditReport) -> str:
    return "Day" if report.period is Period.DAY else "Week"


def _day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _as_of(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "no full run in the period"
    return "at the last full run, " + snapshot.taken_at.strftime("%d %b %Y").lstrip("0")


def _latest_sentence(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "No full run finished in the period."
    return f"At the last full run ({_day(snapshot.taken_at.date())}): {snapshot.flags_in_one.text()}."


_CSS = """
:root { --ink: #1d2733; --muted: #5b6673; --rule: #d5dae0; --accent: #1f5fa8; --warn: #9b1c1c; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 "Segoe UI", "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
main { max-width: 960px; margin: 0 auto; padding: 28px 32px 40px; }
h1 { font-size: 28px; margin: 2px 0 12px; }
h2 { font-size: 19px; margin: 28px 0 6px; }
p { margin: 4px 0 10px; }
.kicker { color: var(--muted); text-transform: uppercase; letter-spacing: .06em; font-size: 12px; margin: 0; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 12px; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; }
.banner { border-left: 5px solid var(--accent); background: #eef3f9; padding: 10px 14px; font-size: 14px; }
.banner.exact { border-left-color: var(--warn); background: #fbeeee; color: var(--warn); }
.tiles { display: grid; grid-template-columns: repeat(5, 1fr); gap: 10px; margin: 18px 0 6px; }
.tile { border: 1px solid var(--rule); border-radius: 6px; padding: 10px 12px; display: flex; flex-direction: column; }
.tile .label { font-size: 13px; color: var(--muted); }
.tile .figure { font-size: 28px; font-weight: 650; line-height: 1.2; }
.tile .sub { font-size: 12px; color: var(--muted); }
figure { margin: 6px 0 0; }
svg.chart { width: 100%; height: auto; display: block; font-size: 12px; }
svg .grid { stroke: #e6e9ed; stroke-width: 1; }
svg .axis { stroke: #8a939d; stroke-width: 1; }
svg .tick, svg .legend, svg .value { fill: var(--ink); }
svg .value { font-size: 11px; }
svg .axis-title { fill: var(--muted); }
svg .empty { fill: var(--muted); font-size: 14px; }
svg .line { fill: none; stroke-width: 2.5; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-size: 14px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--rule); vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); font-weight: 600; }
tbody th { font-weight: normal; white-space: nowrap; }
tfoot th, tfoot td { font-weight: 650; border-top: 2px solid var(--ink); border-bottom: none; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
table.detail { font-size: 13px; }
footer { margin-top: 24px; border-top: 1px solid var(--rule); font-size: 13px; color: var(--muted); }
footer li { margin: 3px 0; }
@media (max-width: 720px) { .tiles { grid-template-columns: repeat(2, 1fr); } }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  .tiles { grid-template-columns: repeat(5, 1fr); gap: 6px; }
  .tile { padding: 6px 8px; }
  .tile .label { font-size: 8.5pt; }
  .tile .figure { font-size: 18pt; }
  .tile .sub { font-size: 7.5pt; }
  .chart-block, .tile, tr, figure { break-inside: avoid; }
  h2 { break-after: avoid; }
  thead { display: table-header-group; }
  tfoot { display: table-row-group; }
}
"""
