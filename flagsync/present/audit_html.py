"""The activity report as one self-contained, printable HTML page: inline CSS and SVG charts, no script, nothing fetched."""

from __future__ import annotations

from html import escape

from flagsync.core.disclosure import EXACT_NOTE, RULE
from flagsync.present.audit_report import (
    ACTIVITY_HEADINGS,
    EN_DASH,
    Activity,
    AuditReport,
    Period,
    Snapshot,
    describe,
    format_day,
)
from flagsync.present.charts import Chart, Series, bar_chart, line_chart


def render_html(report: AuditReport) -> str:
    """One self-contained, printable HTML page: summary, three charts, the tables, and the notes."""
    per = "day" if report.period is Period.DAY else "week"
    labels = [b.short() for b in report.buckets]
    span = f"{format_day(report.since)} to {format_day(report.until)}"
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
        ("Flags in One", latest.flags_in_one.text() if latest else EN_DASH, _as_of(latest)),
        ("Flags added", total[Activity.ADDED].text(), "over the period"),
        ("Flags removed", total[Activity.REMOVED].text(), "over the period"),
        ("Quarantined records", latest.quarantined.text() if latest else EN_DASH, _as_of(latest)),
        ("Unmatched records", latest.unmatched.text() if latest else EN_DASH, _as_of(latest)),
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


def _as_of(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "no full run in the period"
    return "at the last full run, " + snapshot.taken_at.strftime("%d %b %Y").lstrip("0")


def _latest_sentence(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "No full run finished in the period."
    return f"At the last full run ({format_day(snapshot.taken_at.date())}): {snapshot.flags_in_one.text()}."


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
