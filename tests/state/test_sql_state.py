"""Behaviour of SqlStateStore on SQLite and PostgreSQL: runs, pending removals, audit trail, watermark and report."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.state import NO_SUBJECT, SqlStateStore
from flagsync.core.model import Attention, Flag, QuarantinedRecord, QuarantineReason, RunOutcome, RunTrigger, Verdict
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import StateError
from flagsync.ports import AuditEntry, PendingRemoval, ReportRow, StateStore

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_satisfies_the_state_store_protocol(store: SqlStateStore) -> None:
    """SqlStateStore can stand wherever a StateStore is asked for."""
    as_port: StateStore = store
    assert as_port.recent_runs() == []


# --------------------------------------------------------------------------------------------
# Runs


def test_run_round_trip(store: SqlStateStore) -> None:
    """A started and finished run reads back with its trigger, times, outcome and counts."""
    run_id = store.start_run(RunTrigger.OPERATOR, T0)
    store.finish_run(run_id, RunOutcome.CHANGES_FAILED, {"added": 3, "failed": 1}, T0 + timedelta(seconds=42))

    [run] = store.recent_runs()

    assert run.run_id == run_id
    assert len(run_id) == 32
    assert run.trigger is RunTrigger.OPERATOR
    assert run.started_at == T0
    assert run.finished_at == T0 + timedelta(seconds=42)
    assert run.outcome is RunOutcome.CHANGES_FAILED
    assert dict(run.counts) == {"added": 3, "failed": 1}


def test_unfinished_run_has_no_end_or_outcome(store: SqlStateStore) -> None:
    """A run that was started but not finished reads back with no end, no outcome and no counts."""
    store.start_run(RunTrigger.CHANGE_POLL, T0)

    [run] = store.recent_runs()

    assert (run.finished_at, run.outcome, dict(run.counts)) == (None, None, {})


def test_recent_runs_are_newest_first_and_limited(store: SqlStateStore) -> None:
    """recent_runs lists the latest runs first, at most `limit` of them."""
    ids = [store.start_run(RunTrigger.SCHEDULED_FULL, T0 + timedelta(minutes=i)) for i in range(5)]

    assert [r.run_id for r in store.recent_runs(limit=3)] == ids[::-1][:3]


def test_finishing_an_unknown_run_is_a_state_error(store: SqlStateStore) -> None:
    """finish_run on an id the store never issued raises StateError."""
    with pytest.raises(StateError):
        store.finish_run("0" * 32, RunOutcome.CONVERGED, {}, T0)


def test_last_success_is_the_latest_converged_finish(store: SqlStateStore) -> None:
    """last_success is when the latest converged run finished, optionally for one trigger; failed runs do not count."""
    for trigger, outcome, minute in [
        (RunTrigger.SCHEDULED_FULL, RunOutcome.CONVERGED, 1),
        (RunTrigger.CHANGE_POLL, RunOutcome.CONVERGED, 2),
        (RunTrigger.SCHEDULED_FULL, RunOutcome.ERROR, 3),
        (RunTrigger.OPERATOR, RunOutcome.HELD, 4),
    ]:
        run_id = store.start_run(trigger, T0)
        store.finish_run(run_id, outcome, {}, T0 + timedelta(minutes=minute))

    assert store.last_success() == T0 + timedelta(minutes=2)
    assert store.last_success(RunTrigger.SCHEDULED_FULL) == T0 + timedelta(minutes=1)
    assert store.last_success(RunTrigger.OPERATOR) is None


def test_timestamps_come_back_as_aware_utc(store: SqlStateStore) -> None:
    """A timestamp given in another zone is stored as the same instant and read back in UTC."""
    plus_two = timezone(timedelta(hours=2))
    store.start_run(RunTrigger.DEMO, datetime(2024, 3, 1, 14, 0, tzinfo=plus_two))

    [run] = store.recent_runs()

    assert run.started_at == T0
    assert run.started_at.tzinfo is UTC


def test_naive_timestamps_are_refused(store: SqlStateStore) -> None:
    """A naive timestamp is a programming error and is refused before anything is written."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.start_run(RunTrigger.DEMO, datetime(2024, 3, 1, 12, 0))


# --------------------------------------------------------------------------------------------
# Pending and held removals


def test_pending_removal_lifecycle(store: SqlStateStore, pseudonymizer: Pseudonymizer) -> None:
    """A failed removal is remembered, counts attempts when marked again, can become held, and goes when cleared."""
    flag = Flag("INV-1", "P100", 3)

    store.mark_pending(flag, T0)
    assert store.pending_removals() == [PendingRemoval("INV-1", pseudonymizer.person("P100"), T0, 1, False, pseudonymizer.key_id)]

    store.mark_pending(flag, T0 + timedelta(hours=1))
    store.mark_pending(flag, T0 + timedelta(hours=2), held=True)
    assert store.pending_removals() == [PendingRemoval("INV-1", pseudonymizer.person("P100"), T0, 3, True, pseudonymizer.key_id)]

    store.mark_pending(flag, T0 + timedelta(hours=3), held=False)
    assert [p.held for p in store.pending_removals()] == [False]

    store.clear_pending("INV-1")
    assert store.pending_removals() == []


def test_clearing_an_unknown_pending_removal_does_nothing(store: SqlStateStore) -> None:
    """clear_pending of an involvement that is not pending leaves the others alone."""
    store.mark_pending(Flag("INV-1", "P1", 1), T0, held=True)

    store.clear_pending("INV-404")

    assert [p.involvement_id for p in store.pending_removals()] == ["INV-1"]


def test_pending_removals_are_oldest_first(store: SqlStateStore) -> None:
    """pending_removals lists removals in the order they first became pending."""
    store.mark_pending(Flag("INV-B", "P2", 1), T0 + timedelta(minutes=5))
    store.mark_pending(Flag("INV-A", "P1", 1), T0)

    assert [p.involvement_id for p in store.pending_removals()] == ["INV-A", "INV-B"]


def test_concurrent_marks_from_many_threads_count_every_attempt(store: SqlStateStore) -> None:
    """mark_pending called from several threads at once loses no attempt and raises nothing."""
    flags = [Flag(f"INV-{i}", f"P{i}", 1) for i in range(4)]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
                for flag in flags:
                    store.mark_pending(flag, T0)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(p.attempts for p in store.pending_removals()) == [40, 40, 40, 40]


# --------------------------------------------------------------------------------------------
# Audit trail


def test_audit_events_keep_pseudonyms_not_person_ids(store: SqlStateStore, pseudonymizer: Pseudonymizer) -> None:
    """record_events stores each event with the person's pseudonym, the run, outcome and reason."""
    run_id = store.start_run(RunTrigger.OPERATOR, T0)

    store.record_events(run_id, [AuditEntry("add", "P1", "ok", None), AuditEntry("remove", None, "failed", "SERVER_ERROR")], T0)

    events = store.audit_events(None, None)
    assert [(e.event_id, e.at, e.run_id, e.action, e.person, e.outcome, e.reason, e.key_id) for e in events] == [
        (1, T0, run_id, "add", pseudonymizer.person("P1"), "ok", None, pseudonymizer.key_id),
        (2, T0, run_id, "remove", None, "failed", "SERVER_ERROR", pseudonymizer.key_id),
    ]


def test_recording_no_events_writes_nothing(store: SqlStateStore) -> None:
    """An empty batch of events is accepted and leaves the trail empty."""
    store.record_events("r", [], T0)

    assert store.audit_events(None, None) == []


def test_audit_counts_group_by_utc_day_across_midnight(store: SqlStateStore) -> None:
    """Events either side of midnight UTC count on their own UTC day, even when given in another zone."""
    before_midnight = datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)
    after_midnight = datetime(2024, 3, 2, 0, 0, 1, tzinfo=UTC)
    # 01:30 in UTC+2 on 2 March is still 1 March in UTC.
    late_in_utc = datetime(2024, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    store.record_events("r1", [AuditEntry("add", "P1", "ok", None), AuditEntry("add", "P2", "ok", None)], before_midnight)
    store.record_events("r1", [AuditEntry("remove", "P3", "failed", "SERVER_ERROR")], before_midnight)
    store.record_events("r2", [AuditEntry("add", "P4", "ok", None), AuditEntry("add", "P5", "failed", "X")], after_midnight)
    store.record_events("r3", [AuditEntry("add", "P6", "ok", None)], late_in_utc)

    assert store.audit_counts(None, None) == [
        (date(2024, 3, 1), "add", "ok", 3),
        (date(2024, 3, 1), "remove", "failed", 1),
        (date(2024, 3, 2), "add", "failed", 1),
        (date(2024, 3, 2), "add", "ok", 1),
    ]


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
def test_audit_day_ranges_are_inclusive(store: SqlStateStore, since: date | None, until: date | None, days: list[int]) -> None:
    """since and until select whole UTC days, both ends included, in events and counts alike."""
    for day in (1, 2, 3):
        store.record_events("r", [AuditEntry("add", f"P{day}", "ok", None)], datetime(2024, 3, day, 23, 30, tzinfo=UTC))

    assert [e.at.day for e in store.audit_events(since, until)] == days
    assert [d.day for d, _, _, _ in store.audit_counts(since, until)] == days


def test_purge_deletes_only_older_events_and_counts_them(store: SqlStateStore) -> None:
    """purge_audit removes the events before the cut-off, keeps the rest, and says how many went."""
    for days_ago in (800, 731, 729, 0):
        store.record_events("r", [AuditEntry("add", "P1", "ok", None)], T0 - timedelta(days=days_ago))

    assert store.purge_audit(T0 - timedelta(days=730)) == 2
    assert [e.at for e in store.audit_events(None, None)] == [T0 - timedelta(days=729), T0]
    assert store.purge_audit(T0 - timedelta(days=730)) == 0


# --------------------------------------------------------------------------------------------
# Watermark


def test_watermark_round_trip(store: SqlStateStore) -> None:
    """The watermark starts empty, keeps the last value set, and can be cleared."""
    assert store.get_watermark() is None

    store.set_watermark("2024-03-01T12:00:00+00:00")
    store.set_watermark("sha256:abc")
    assert store.get_watermark() == "sha256:abc"

    store.set_watermark(None)
    assert store.get_watermark() is None


# --------------------------------------------------------------------------------------------
# Report


def test_report_is_pseudonymised_and_replaced(store: SqlStateStore, pseudonymizer: Pseudonymizer) -> None:
    """replace_report stores every kind of row under pseudonyms, and a later report replaces it whole."""
    person, record, kid = pseudonymizer.person, pseudonymizer.record, pseudonymizer.key_id
    store.replace_report(
        quarantined=[
            QuarantinedRecord("R1", "P1", QuarantineReason.MISSING_FIELD, "decision"),
            QuarantinedRecord(None, "P2", QuarantineReason.DUPLICATE_RECORD_ID),
            QuarantinedRecord(None, None, QuarantineReason.BAD_PERSON_ID, "person_id"),
        ],
        unmatched=["R3"],
        attention=[Attention("P4", "R4", Verdict.NOT_INFORMED)],
        person_issues=[("P5", "PERSON_ARCHIVED")],
    )

    assert store.report() == [
        ReportRow("quarantined", record("R1"), "MISSING_FIELD:decision", kid),
        ReportRow("quarantined", person("P2"), "DUPLICATE_RECORD_ID", kid),
        ReportRow("quarantined", NO_SUBJECT, "BAD_PERSON_ID:person_id", kid),
        ReportRow("unmatched", record("R3"), "NO_PERSON_ID", kid),
        ReportRow("attention", person("P4"), "not_informed", kid),
        ReportRow("person_issue", person("P5"), "PERSON_ARCHIVED", kid),
    ]

    store.replace_report([], ["R9"], [], [])
    assert store.report() == [ReportRow("unmatched", record("R9"), "NO_PERSON_ID", kid)]

    store.replace_report([], [], [], [])
    assert store.report() == []


# --------------------------------------------------------------------------------------------
# Set-up, persistence and errors


def test_state_survives_a_new_store_on_the_same_url(state_url: str, pseudonymizer: Pseudonymizer) -> None:
    """A second store opened on the same URL sees what the first one wrote (and does not recreate the tables)."""
    first = SqlStateStore(state_url, pseudonymizer)
    run_id = first.start_run(RunTrigger.OPERATOR, T0)
    first.set_watermark("w")
    first.close()

    second = SqlStateStore(state_url, pseudonymizer)
    try:
        assert [r.run_id for r in second.recent_runs()] == [run_id]
        assert second.get_watermark() == "w"
    finally:
        second.close()


def test_a_store_of_an_unknown_revision_is_refused(state_url: str, pseudonymizer: Pseudonymizer) -> None:
    """A state store migrated by a newer flagsync (a revision this one does not know) raises StateError, unread and unwritten."""
    SqlStateStore(state_url, pseudonymizer).set_watermark("w")
    engine = create_engine(state_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    with pytest.raises(StateError, match="schema revision 9999, which this flagsync does not know"):
        SqlStateStore(state_url, pseudonymizer).get_watermark()


def test_a_run_is_refused_once_the_store_moves_to_another_revision(state_url: str, pseudonymizer: Pseudonymizer) -> None:
    """A long-lived store (a daemon) checks the revision at every run start, so a store migrated meanwhile is not written."""
    store = SqlStateStore(state_url, pseudonymizer)
    store.start_run(RunTrigger.OPERATOR, T0)
    engine = create_engine(state_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    with pytest.raises(StateError, match="9999"):
        store.start_run(RunTrigger.OPERATOR, T0)
    store.close()


def test_sqlite_parent_directory_is_created_and_wal_is_on(tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    """An SQLite state file in a missing directory is created there, in WAL journal mode."""
    path = tmp_path / "does" / "not" / "exist" / "state.db"
    store = SqlStateStore(f"sqlite:///{path}", pseudonymizer)
    store.set_watermark("w")
    store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_in_memory_sqlite_works_from_several_threads(pseudonymizer: Pseudonymizer) -> None:
    """An in-memory SQLite store is one database shared by every thread that uses the store."""
    store = SqlStateStore("sqlite://", pseudonymizer)
    thread = threading.Thread(target=store.set_watermark, args=("from-a-thread",))
    thread.start()
    thread.join()

    assert store.get_watermark() == "from-a-thread"


def test_describe_hides_the_password(pseudonymizer: Pseudonymizer) -> None:
    """describe names the backend and database but never the password (and connects to nothing)."""
    store = SqlStateStore("postgresql+psycopg://flagsync:hunter2-secret@db.invalid:5432/state", pseudonymizer)

    assert "hunter2-secret" not in store.describe()
    assert "db.invalid" in store.describe()


def test_an_invalid_url_is_a_state_error_without_the_url(pseudonymizer: Pseudonymizer) -> None:
    """A URL SQLAlchemy cannot parse raises StateError that does not repeat the URL."""
    with pytest.raises(StateError) as caught:
        SqlStateStore("not a url :: hunter2-secret", pseudonymizer)

    assert "hunter2-secret" not in str(caught.value)


def test_first_use_while_the_run_lock_is_held(state_url: str, pseudonymizer: Pseudonymizer) -> None:
    """A run takes the run lock and then creates the tables on first use: the two never wait for each other."""
    with RunLock(state_url, wait_seconds=0):
        store = SqlStateStore(state_url, pseudonymizer)
        run_id = store.start_run(RunTrigger.OPERATOR, T0)
        store.close()

    assert len(run_id) == 32
