"""What `flagsync check` says of each thing it checked, in one line each, truthfully."""

from __future__ import annotations

from flagsync.ports import PageProbe, RunRecord
from flagsync.service.report import SourceSurvey


def describe_survey(survey: SourceSurvey) -> str:
    return f"{survey.records} records, {survey.people} people, {survey.quarantined} quarantined, {survey.unmatched} unmatched"


def describe_probe(probe: PageProbe) -> str:
    """A first page of one item says nothing about the total, so nothing about it is claimed."""
    if not probe.items:
        return "token accepted, listing answered: no flags of ours in One"
    more = "; more pages follow" if probe.more else "; no more pages"
    return f"token accepted, listing answered: its first page (of one item) held a flag{more}"


def describe_last_run(last: RunRecord | None) -> str:
    if last is None:
        return "reachable, no runs yet"
    outcome = last.outcome.value if last.outcome else "still running"
    return f"reachable, last run {outcome} at {last.started_at:%Y-%m-%d %H:%M} UTC"
