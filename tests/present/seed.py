"""Several weeks of a small service's history written into a state store through its own API, for the report tests.

The history is made up but shaped like the real thing: a few full runs a day, each recording the
counts a real run stores; adds and removes as audit events with raw person ids (the store keeps
only pseudonyms); the odd failed write, held removal and person One refuses; and change polls,
whose counts the report must ignore.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flagsync.core.model import RunOutcome, RunTrigger
from flagsync.ports import AuditEntry, StateStore

#: The day (counted from the first) when a batch of consent forms arrives: one busy day among quiet ones.
BATCH_DAY = 9

#: Full runs a day (the daemon's default is hourly; fewer keep the tests quick).
RUNS_PER_DAY = 4


@dataclass
class Seeded:
    """What was written: the raw ids used (none may appear in a report) and the exact figures."""

    person_ids: set[str] = field(default_factory=set)
    run_ids: list[str] = field(default_factory=list)
    #: (UTC day, action, outcome) -> exact number of events.
    events: dict[tuple[date, str, str], int] = field(default_factory=dict)
    #: The counts stored by each full run, in order, with its finish time.
    full_runs: list[tuple[datetime, dict[str, int]]] = field(default_factory=list)


def full_counts(flags: int, quarantined: int, unmatched: int, **rest: int) -> dict[str, int]:
    """The counts a full run stores (RunReport.counts), with the given figures and zeros elsewhere."""
    counts = {
        "adds": 0,
        "removes": 0,
        "failed": 0,
        "person_issues": 0,
        "held": 0,
        "unchanged": flags,
        "unmatched": unmatched,
        "quarantined": quarantined,
        "attention": 0,
        "flags_in_one": flags,
    }
    counts.update(rest)
    return counts


def seed_history(state: StateStore, first_day: date, days: int, *, seed: int = 7, start_flags: int = 85) -> Seeded:
    """Write `days` days of history from `first_day` (UTC) into `state`; returns what was written."""
    rng = random.Random(seed)
    seeded = Seeded()
    flagged: list[str] = [f"P{n:07d}" for n in range(1, start_flags + 1)]
    next_person = start_flags + 1
    quarantined, unmatched = 6, 3
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for slot in range(RUNS_PER_DAY):
            started = datetime(day.year, day.month, day.day, 1 + slot * (24 // RUNS_PER_DAY), 5, tzinfo=UTC)
            events: list[AuditEntry] = []
            flags_at_start = len(flagged)
            adds = rng.choice([0, 0, 0, 0, 0, 1, 1, 2])
            if offset == BATCH_DAY and slot == 1:
                adds += 12  # a morning when a backlog of consent forms was entered
            for _ in range(adds):
                person = f"P{next_person:07d}"
                next_person += 1
                flagged.append(person)
                events.append(AuditEntry("add", person, rng.choices(["ok", "already_present"], weights=[9, 1])[0], None))
            removes = min(rng.choice([0, 0, 0, 0, 0, 0, 1, 1, 2]), len(flagged))
            for _ in range(removes):
                person = flagged.pop(rng.randrange(len(flagged)))
                events.append(AuditEntry("remove", person, "ok", None))
            if rng.random() < 0.08:
                events.append(AuditEntry("add", f"P{next_person + 5000:07d}", "failed", "SERVER_ERROR"))
            if rng.random() < 0.04:
                events.append(AuditEntry("add", f"P{next_person + 9000:07d}", "person_issue", "PERSON_ARCHIVED"))
            if rng.random() < 0.02 and flagged:
                events.append(AuditEntry("hold", flagged[0], "held", "MASS_REMOVAL_GUARD"))
            quarantined = max(0, quarantined + rng.choice([-1, 0, 0, 0, 1]))
            unmatched = max(0, unmatched + rng.choice([-1, 0, 0, 1]))
            run_id = state.start_run(RunTrigger.SCHEDULED_FULL, started)
            if events:
                state.record_events(run_id, events, started + timedelta(seconds=20))
            finished = started + timedelta(seconds=40)
            counts = full_counts(flags_at_start, quarantined, unmatched, adds=adds, removes=removes)
            state.finish_run(run_id, RunOutcome.CONVERGED, counts, finished)
            seeded.full_runs.append((finished, counts))
            seeded.run_ids.append(run_id)
            for event in events:
                if event.person_id is not None:
                    seeded.person_ids.add(event.person_id)
                key = (started.date(), event.action, event.outcome)
                seeded.events[key] = seeded.events.get(key, 0) + 1
        # A change poll that saw two people: its counts describe those two, not One.
        poll = state.start_run(RunTrigger.CHANGE_POLL, datetime(day.year, day.month, day.day, 23, 30, tzinfo=UTC))
        state.finish_run(
            poll, RunOutcome.CONVERGED, full_counts(1, 0, 0), datetime(day.year, day.month, day.day, 23, 31, tzinfo=UTC)
        )
        seeded.run_ids.append(poll)
    return seeded
