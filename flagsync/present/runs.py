"""Plans and run reports for the operator: tables at a terminal, one JSON document with `--json` (ids shown: not logs)."""

from __future__ import annotations

from collections import Counter
from typing import IO, Any

from flagsync.core.model import Plan
from flagsync.core.planner import verdict_counts
from flagsync.present.terminal import table
from flagsync.service import RunReport


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as a JSON-ready document (ids shown: this goes to the operator, not to logs)."""
    return {
        "adds": list(plan.adds),
        "removes": [{"personId": f.person_id, "involvementId": f.involvement_id} for f in plan.removes],
        "held": [{"personId": f.person_id, "involvementId": f.involvement_id} for f in plan.held],
        "skipped": [{"personId": s.person_id, "reason": s.reason, "retryAt": s.retry_at.isoformat()} for s in plan.skipped],
        "unchanged": len(plan.unchanged),
        "unmatched": list(plan.unmatched),
        "quarantined": [
            {"recordId": q.record_id, "personId": q.person_id, "reason": q.reason.value, "field": q.field}
            for q in plan.quarantined
        ],
        "attention": [{"personId": a.person_id, "recordId": a.record_id, "reason": a.verdict.value} for a in plan.attention],
        "notFound": list(plan.not_found),
        "flagsInOne": plan.current_flags,
        "guardTripped": plan.guard_tripped,
    }


def print_plan(plan: Plan, out: IO[str]) -> None:
    """A plan as short tables for a person at a terminal."""
    skipped = f", {len(plan.skipped)} skipped" if plan.skipped else ""
    out.write(
        f"Plan: {len(plan.adds)} to add, {len(plan.removes)} to remove, {len(plan.held)} held{skipped}, "
        f"{len(plan.unchanged)} unchanged ({plan.current_flags} flags in One)\n"
    )
    if plan.verdicts:
        tally = Counter({v.value: n for v, n in verdict_counts(plan.verdicts).items()})
        out.write("Decisions: " + ", ".join(f"{n} {verdict}" for verdict, n in sorted(tally.items())) + "\n")
    for person_id in plan.not_found:
        out.write(f"\n{person_id}: no consent record names this person and One holds no flag of ours for them: nothing to do.\n")
    if plan.adds:
        out.write("\nTo add:\n")
        table([[p] for p in plan.adds], ["person"], out)
    if plan.removes:
        out.write("\nTo remove:\n")
        table([[f.person_id, f.involvement_id] for f in plan.removes], ["person", "involvement"], out)
    if plan.held:
        out.write("\nHeld by the mass-removal guard (release with: flagsync sync --allow-mass-removal):\n")
        table([[f.person_id, f.involvement_id] for f in plan.held], ["person", "involvement"], out)
    if plan.skipped:
        out.write("\nSkipped: One refused them recently, so they are not asked again until then:\n")
        table(
            [[s.person_id, s.reason, s.retry_at.strftime("%Y-%m-%d %H:%M UTC")] for s in plan.skipped],
            ["person", "reason", "asked again after"],
            out,
        )
    if plan.quarantined:
        out.write("\nQuarantined records (no flag for their person until fixed):\n")
        table(
            [[q.record_id or "-", q.person_id or "-", q.reason.value, q.field or "-"] for q in plan.quarantined],
            ["record", "person", "reason", "field"],
            out,
        )
    if plan.unmatched:
        out.write("\nUnmatched records (no One person id; nothing sent):\n")
        table([[r] for r in plan.unmatched], ["record"], out)
    if plan.attention:
        out.write("\nNeeds attention (valid record, but no usable consent):\n")
        table([[a.person_id, a.record_id, a.verdict.value] for a in plan.attention], ["person", "record", "reason"], out)


def report_document(report: RunReport) -> dict[str, Any]:
    """A run's report as a JSON-ready document: outcome, counts, the plan, and what failed or was refused."""
    doc: dict[str, Any] = {
        "runId": report.run_id,
        "outcome": report.outcome.value,
        "dryRun": report.dry_run,
        "durationSeconds": round(report.duration_s, 3),
        "counts": report.counts(),
        "error": report.error,
    }
    if report.plan is not None:
        doc["plan"] = plan_document(report.plan)
    doc["failed"] = [{"action": c.action, "personId": c.person_id, "reason": c.reason} for c in report.failed]
    doc["personIssues"] = [{"personId": c.person_id, "reason": c.reason} for c in report.person_issues]
    return doc


def print_report(report: RunReport, out: IO[str], *, show_plan: bool = True) -> None:
    """A run's report for a person at a terminal: the plan (unless shown already), what was applied, the outcome."""
    if report.plan is not None and show_plan:
        print_plan(report.plan, out)
    if report.dry_run:
        out.write("\nDry run: nothing was written.\n")
        return
    counts = report.counts()
    out.write(
        f"\nApplied: {counts['adds']} added, {counts['removes']} removed, {counts['failed']} failed, "
        f"{counts['person_issues']} refused by One for the person.\n"
    )
    if report.failed:
        out.write("\nFailed (kept and retried on the next run):\n")
        table([[c.action, c.person_id, c.reason or "-"] for c in report.failed], ["action", "person", "reason"], out)
    if report.person_issues:
        out.write("\nOne will not hold a flag for (not asked again for an hour):\n")
        table([[c.person_id, c.reason or "-"] for c in report.person_issues], ["person", "reason"], out)
    out.write(f"\nOutcome: {report.outcome.value}")
    if report.error:
        out.write(f" - {report.error}")
    out.write(f" (run {report.run_id}, {report.duration_s:.1f} s)\n")
