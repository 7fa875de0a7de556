"""SqlStateStore.run_history on SQLite and PostgreSQL: the finished full runs, with their counts, for the audit report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from flagsync.adapters.state import SqlStateStore
from flagsync.core.model import RunOutcome, RunTrigger
from flagsync.ports import StateStore


def _run(store: SqlStateStore, trigger: RunTrigger, finished: datetime | None, **counts: int) -> str:
    run_id = store.start_run(trigger, (finished or datetime(2024, 3, 1, tzinfo=UTC)) - timedelta(minutes=1))
    if finished is not None:
        store.finish_run(run_id, RunOutcome.CONVERGED, counts, finished)
    return run_id


def test_run_history_is_part_of_the_state_store_protocol(store: SqlStateStore) -> None:
    """run_history can be called through the StateStore port."""
    as_port: StateStore = store
    assert as_port.run_history(None, None) == []


def test_only_finished_full_runs_are_listed_oldest_first(store: SqlStateStore) -> None:
    """Operator, scheduled and demo runs are listed by finish time; person runs, change polls and unfinished runs are not."""
    t = datetime(2024, 3, 1, 12, tzinfo=UTC)
    scheduled = _run(store, RunTrigger.SCHEDULED_FULL, t + timedelta(hours=2), flags_in_one=40, quarantined=2, unmatched=1)
    operator = _run(store, RunTrigger.OPERATOR, t, flags_in_one=39)
    demo = _run(store, RunTrigger.DEMO, t + timedelta(hours=1), flags_in_one=3)
    _run(store, RunTrigger.OPERATOR_PERSON, t + timedelta(hours=3), flags_in_one=1)
    _run(store, RunTrigger.CHANGE_POLL, t + timedelta(hours=4), flags_in_one=1)
    _run(store, RunTrigger.SCHEDULED_FULL, None)

    history = store.run_history(None, None)

    assert [r.run_id for r in history] == [operator, demo, scheduled]
    assert dict(history[-1].counts) == {"flags_in_one": 40, "quarantined": 2, "unmatched": 1}
    assert history[-1].outcome is RunOutcome.CONVERGED


@pytest.mark.parametrize(
    ("since", "until", "days"),
    [
        (None, None, [1, 2, 3]),
        (date(2024, 3, 2), None, [2, 3]),
        (None, date(2024, 3, 2), [1, 2]),
        (date(2024, 3, 2), date(2024, 3, 2), [2]),
        (date(2024, 3, 4), None, []),
    ],
)
def test_run_history_selects_whole_utc_days_by_finish_time(
    store: SqlStateStore, since: date | None, until: date | None, days: list[int]
) -> None:
    """since and until select runs that finished on those UTC days, both ends included, up to the last second."""
    for day in (1, 2, 3):
        _run(store, RunTrigger.SCHEDULED_FULL, datetime(2024, 3, day, 23, 59, 59, tzinfo=UTC))
        _run(store, RunTrigger.SCHEDULED_FULL, datetime(2024, 3, day, 0, 0, 0, tzinfo=UTC))

    history = store.run_history(since, until)

    assert sorted({r.finished_at.day for r in history if r.finished_at}) == days
    assert len(history) == 2 * len(days)
