"""The anonymised activity report of `flagsync audit`: built from the audit trail and run history, as CSV or JSON.

`build_report` is pure: exact counts in, a report out whose every figure has already been through
small-number suppression (unless `exact`), totals included, so no renderer can show an exact
small number by mistake. The CSV and JSON carry the figures for machines; `audit_html` renders the
same report as one printable page for a manager.
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
from typing import Any

from flagsync.core.disclosure import EXACT_NOTE, LARGEST_SUPPRESSED, ROUNDING_BASE, RULE, SUPPRESSED, Figure
from flagsync.core.model import RunOutcome
from flagsync.ports import RunRecord

EN_DASH = "\u2013"

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
            return format_day(self.start)
        if self.start.year != self.end.year:
            return f"{format_day(self.start)} {EN_DASH} {format_day(self.end)}"
        if self.start.month != self.end.month:
            return f"{self.start.day} {self.start:%b} {EN_DASH} {format_day(self.end)}"
        return f"{self.start.day}{EN_DASH}{format_day(self.end)}"


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


def format_day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"
