"""The sync service against in-memory fakes of the source and One, with a real SQLite state store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from flagsync.adapters.memory_gateway import InMemoryFlagGateway
from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.state import SqlStateStore
from flagsync.core.model import Decision, Flag, QuarantinedRecord, QuarantineReason, Rules, RunOutcome, RunTrigger, SourceItem
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import ContractViolation, RetriableRemoteError, RunInProgressError, StateError
from flagsync.ports import AuditEntry, CreateOutcome
from flagsync.service import AUDIT_BATCH, MAX_UNAUDITED, SyncService
from tests.core.builders import rec
from tests.fakes import ListSource

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=30)


def grant(person: str, record: str | None = None, **kw: object) -> SourceItem:
    return rec(record or f"r-{person}", person, recorded_at=EARLIER, **kw)  # type: ignore[arg-type]


def withdraw(person: str, record: str | None = None) -> SourceItem:
    return rec(
        record or f"w-{person}", person, Decision.WITHDRAWN, informed=None, consented_by=None, recorded_at=NOW - timedelta(days=1)
    )


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqlStateStore]:
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}", Pseudonymizer(b"test-key-0123456789"))
    yield store
    store.close()


@pytest.fixture
def one() -> InMemoryFlagGateway:
    return InMemoryFlagGateway(any_person=True)


def make_service(
    source: ListSource, one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path, **rules: object
) -> SyncService:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    return SyncService(
        source=source,
        gateway=one,
        state=state,
        rules=Rules(**rules),  # type: ignore[arg-type]
        max_concurrency=4,
        lock=lambda: RunLock(url, wait_seconds=0.2),
        clock=Clock(),
    )


class Clock:
    """NOW, moving on a millisecond per reading so that runs keep their order."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> datetime:
        self.ticks += 1
        return NOW + timedelta(milliseconds=self.ticks)


def test_first_sync_flags_only_granted_people_and_converges(
    one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path
) -> None:
    """Granted, informed, open, unexpired consent gets a flag; refusal and closure do not."""
    source = ListSource([grant("P1"), grant("P2"), rec("r3", "P3", Decision.REFUSED, recorded_at=EARLIER),
                         grant("P4", case_status="closed")])  # fmt: skip
    report = make_service(source, one, state, tmp_path).sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert sorted(f.person_id for f in one.flags()) == ["P1", "P2"]
    assert state.recent_runs(1)[0].outcome is RunOutcome.CONVERGED


def test_second_run_makes_no_writes(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A converged system is left alone: the steady state makes only the listing call."""
    service = make_service(ListSource([grant("P1"), grant("P2")]), one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    one.calls.clear()
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert set(one.calls) == {"list_flags"}


def test_withdrawal_removes_the_flag(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A withdrawal newer than the grant removes the person's flag."""
    source = ListSource([grant("P1"), grant("P2")])
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items.append(withdraw("P1"))
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert [f.person_id for f in one.flags()] == ["P2"]


def test_emptied_source_holds_every_removal(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """An emptied source trips the guard: nothing is removed, the run is HELD and the holds are stored."""
    source = ListSource([grant(f"P{n}") for n in range(60)])
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items.clear()
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.HELD
    assert len(one.flags()) == 60
    assert sum(p.held for p in state.pending_removals()) == 60


def test_allow_mass_removal_releases_held_removals(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """An operator's explicit release removes the held flags and clears the holds."""
    source = ListSource([grant(f"P{n}") for n in range(60)])
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items.clear()
    service.sync(trigger=RunTrigger.OPERATOR)
    report = service.sync(trigger=RunTrigger.OPERATOR, allow_mass_removal=True)
    assert report.outcome is RunOutcome.CONVERGED
    assert one.flags() == []
    assert state.pending_removals() == []


def test_holds_clear_when_the_source_is_fixed(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """Once the source is whole again, stored holds are settled without removing anything."""
    items: list[SourceItem] = [grant(f"P{n}") for n in range(60)]
    source = ListSource(items)
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items = []
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items = items
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert len(one.flags()) == 60
    assert state.pending_removals() == []


@pytest.mark.parametrize("fail_after", [0, 1, 2])
def test_partial_source_read_removes_nothing(
    one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path, fail_after: int
) -> None:
    """A read that fails part-way plans nothing: the run is an ERROR and every flag stays."""
    source = ListSource([grant("P1"), grant("P2")])
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items = [withdraw("P1"), withdraw("P2")]
    source.fail_after = fail_after
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.ERROR
    assert report.error is not None and "mid-read" in report.error
    assert len(one.flags()) == 2
    assert state.recent_runs(1)[0].outcome is RunOutcome.ERROR


def test_failed_listing_removes_nothing(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """When One cannot be listed in full, the run is an ERROR and makes no write."""
    service = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    one.fail_next(1, RetriableRemoteError("One unavailable", status=503, code="UPSTREAM_UNAVAILABLE"), operation="list_flags")
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.ERROR
    assert one.flags() == []


class HeldListing(InMemoryFlagGateway):
    """A One whose listing waits (at most 5 s) until the run cancels it or the test releases it, noting what it saw."""

    def __init__(self) -> None:
        super().__init__(any_person=True)
        self.listing_started = threading.Event()
        self.release = threading.Event()
        self.listed = threading.Event()
        self.cancelled: bool | None = None
        self.context: dict[str, object] = {}

    def list_flags(self, *, cancel: threading.Event | None = None) -> list[Flag]:
        self.context = structlog.contextvars.get_contextvars()
        self.listing_started.set()
        assert cancel is not None
        deadline = time.monotonic() + 5
        while not (cancel.is_set() or self.release.is_set()) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.cancelled = cancel.is_set()
        try:
            return super().list_flags(cancel=cancel)
        finally:
            self.listed.set()


class ReadAfterListingStarts(ListSource):
    """A source whose read waits (at most 5 s) for One's listing to start, and notes whether it did."""

    def __init__(self, items: list[SourceItem], one: HeldListing) -> None:
        super().__init__(items)
        self.one = one
        self.listing_had_started: bool | None = None

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        self.listing_had_started = self.one.listing_started.wait(5)
        self.one.release.set()
        yield from super().read_all(now)


def test_one_is_listed_while_the_source_is_read(state: SqlStateStore, tmp_path: Path) -> None:
    """A full run lists One in a thread during the read, with the run's context (run id)."""
    one = HeldListing()
    source = ReadAfterListingStarts([grant("P1")], one)
    report = make_service(source, one, state, tmp_path).sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert source.listing_had_started is True
    assert one.cancelled is False
    assert one.context.get("run_id") == report.run_id
    assert [f.person_id for f in one.flags()] == ["P1"]


def test_a_failed_read_cancels_the_listing_and_writes_nothing(state: SqlStateStore, tmp_path: Path) -> None:
    """The read breaks while One is being listed: the run is an ERROR at once and the listing stops, unused."""
    one = HeldListing()
    one.add_flag_by_hand("P1")
    source = ListSource([grant("P2"), grant("P3")])
    source.fail_after = 1
    report = make_service(source, one, state, tmp_path).sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.ERROR
    assert report.error is not None and "mid-read" in report.error
    assert one.listed.wait(5)
    assert one.cancelled is True
    assert [f.person_id for f in one.flags()] == ["P1"]
    assert set(one.calls) == {"list_flags"}


def test_a_stop_while_waiting_for_the_listing_ends_the_run_interrupted(state: SqlStateStore, tmp_path: Path) -> None:
    """SIGTERM while One is still being listed: the run ends `interrupted` without waiting for the listing, writing nothing."""
    one = HeldListing()
    service = make_service(ListSource([grant("P1"), grant("P2")]), one, state, tmp_path)
    threading.Timer(0.2, service.stop_event.set).start()
    started = time.monotonic()
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.INTERRUPTED
    assert time.monotonic() - started < 4  # the listing would have held the run for 5 s
    assert one.listed.wait(5)
    assert one.cancelled is True
    assert one.flags() == []
    assert state.recent_runs(1)[0].outcome is RunOutcome.INTERRUPTED


class ReadUntilTheListingFails(ListSource):
    """A source of many records whose read pauses (at most 5 s) at record 1,500 until One's listing has failed."""

    def __init__(self, items: list[SourceItem], listed: threading.Event) -> None:
        super().__init__(items)
        self.listed = listed
        self.read = 0

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        for item in super().read_all(now):
            if self.read == 1500:
                assert self.listed.wait(5)
            self.read += 1
            yield item


def test_a_failed_listing_ends_the_read_early(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """One cannot be listed: the run ends as an ERROR at the read's next check, not after reading every record."""
    listed = threading.Event()
    real_list_flags = one.list_flags

    def list_flags(*, cancel: threading.Event | None = None) -> list[Flag]:
        try:
            return real_list_flags(cancel=cancel)
        finally:
            listed.set()

    one.list_flags = list_flags  # type: ignore[method-assign]
    one.fail_next(1, RetriableRemoteError("One unavailable", status=503, code="UPSTREAM_UNAVAILABLE"), operation="list_flags")
    source = ReadUntilTheListingFails([grant(f"P{n}") for n in range(5000)], listed)
    report = make_service(source, one, state, tmp_path).sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.ERROR
    assert report.error is not None and "One unavailable" in report.error
    assert source.read <= 2000  # of 5,000
    assert one.flags() == []


def test_failed_removal_is_kept_and_retried(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A removal One did not confirm is stored as pending, retried next run, then cleared."""
    source = ListSource([grant("P1")])
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items.append(withdraw("P1"))
    one.fail_next(1, RetriableRemoteError("One unavailable", status=503, code="UPSTREAM_UNAVAILABLE"), operation="remove_flag")
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CHANGES_FAILED
    assert [p.held for p in state.pending_removals()] == [False]
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert one.flags() == []
    assert state.pending_removals() == []


def test_create_committed_before_a_504_converges_without_duplicate(
    one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path
) -> None:
    """A create that One committed but answered with a 504 ends as exactly one flag after the next run."""
    service = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    one.fail_next(
        1, RetriableRemoteError("timeout", status=504, code="GATEWAY_TIMEOUT"), operation="create_flag", after_commit=True
    )
    assert service.sync(trigger=RunTrigger.OPERATOR).outcome is RunOutcome.CHANGES_FAILED
    assert service.sync(trigger=RunTrigger.OPERATOR).outcome is RunOutcome.CONVERGED
    assert [f.person_id for f in one.flags()] == ["P1"]


def test_person_refused_by_one_is_reported_not_failed(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """An archived person is a person issue in the report and the status, not a failed change."""
    one = InMemoryFlagGateway()
    one.add_person("P1", "archived")
    one.add_person("P2")
    report = make_service(ListSource([grant("P1"), grant("P2")]), one, state, tmp_path).sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert [(c.person_id, c.reason) for c in report.person_issues] == [("P1", "PERSON_ARCHIVED")]
    assert [r.reason for r in state.report() if r.kind == "person_issue"] == ["PERSON_ARCHIVED"]


def test_refused_person_is_not_asked_again_every_run(state: SqlStateStore, tmp_path: Path) -> None:
    """Within the back-off, a person One refused is listed as skipped (reason, retry time), without another write to One."""
    one = InMemoryFlagGateway()
    one.add_person("P1", "archived")
    service = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    first = service.sync(trigger=RunTrigger.SCHEDULED_FULL)
    assert [(c.person_id, c.reason) for c in first.person_issues] == [("P1", "PERSON_ARCHIVED")]
    one.calls.clear()
    report = service.sync(trigger=RunTrigger.SCHEDULED_FULL)
    assert "create_flag" not in one.calls
    assert report.person_issues == []
    assert report.plan is not None
    [skipped] = report.plan.skipped
    assert (skipped.person_id, skipped.reason) == ("P1", "PERSON_ARCHIVED")
    assert NOW + timedelta(minutes=59) < skipped.retry_at <= NOW + timedelta(hours=1, seconds=1)
    assert report.outcome is RunOutcome.CONVERGED


def test_the_back_off_survives_the_process_and_shows_in_plan(state: SqlStateStore, tmp_path: Path) -> None:
    """A new service on the same state store (a one-off `sync` after the daemon) honours the stored back-off; `plan` shows it."""
    one = InMemoryFlagGateway()
    one.add_person("P1", "merged")
    make_service(ListSource([grant("P1")]), one, state, tmp_path).sync(trigger=RunTrigger.SCHEDULED_FULL)
    one.calls.clear()
    later = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    plan = later.plan()
    assert plan.adds == ()
    assert [(s.person_id, s.reason) for s in plan.skipped] == [("P1", "PERSON_MERGED")]
    later.sync(trigger=RunTrigger.OPERATOR)
    assert "create_flag" not in one.calls


def test_after_the_back_off_one_is_asked_again(state: SqlStateStore, tmp_path: Path) -> None:
    """Once the back-off is over, the person is asked for again (and, unarchived meanwhile, gets the flag)."""
    one = InMemoryFlagGateway()
    one.add_person("P1", "archived")
    make_service(ListSource([grant("P1")]), one, state, tmp_path).sync(trigger=RunTrigger.SCHEDULED_FULL)
    one.add_person("P1", "active")
    service = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    service._clock = lambda: NOW + timedelta(hours=2)
    report = service.sync(trigger=RunTrigger.SCHEDULED_FULL)
    assert [f.person_id for f in one.flags()] == ["P1"]
    assert report.plan is not None and report.plan.skipped == ()


def test_refusals_are_stored_under_pseudonyms(state: SqlStateStore, tmp_path: Path) -> None:
    """The stored back-off names nobody in the clear."""
    one = InMemoryFlagGateway()
    one.add_person("CANARYP9", "restricted")
    make_service(ListSource([grant("CANARYP9")]), one, state, tmp_path).sync(trigger=RunTrigger.SCHEDULED_FULL)
    state.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"CANARYP9" not in blob


def test_contract_violation_is_a_failed_change_with_an_alert(
    one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path
) -> None:
    """One rejecting our request as malformed is a failure flagged as a bug."""
    one.fail_next(1, ContractViolation("rejected", status=422, code="UNKNOWN_FIELD"), operation="create_flag")
    report = make_service(ListSource([grant("P1")]), one, state, tmp_path).sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CHANGES_FAILED
    assert [(c.reason, c.alert) for c in report.failed] == [("UNKNOWN_FIELD", True)]


def test_drift_is_repaired(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A flag of ours deleted by hand comes back; one added by hand without consent goes; duplicates shrink to one."""
    people = [f"P{n:02d}" for n in range(20)]
    service = make_service(ListSource([grant(p) for p in people]), one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    p00 = next(f for f in one.flags() if f.person_id == "P00")
    one.remove_by_hand(p00.involvement_id)
    one.add_flag_by_hand("P99")
    one.add_flag_by_hand("P01")
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert sorted(f.person_id for f in one.flags()) == people


def test_person_sync_touches_only_that_person(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """`--person` syncs one person and leaves every other flag, wanted or not, alone."""
    service = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    one.add_flag_by_hand("P9")  # unwanted, but outside the scope
    report = service.sync(trigger=RunTrigger.OPERATOR_PERSON, person_ids=frozenset({"P1"}))
    assert report.outcome is RunOutcome.CONVERGED
    assert sorted(f.person_id for f in one.flags()) == ["P1", "P9"]


def test_quarantined_record_removes_an_existing_flag(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A person with an invalid record is uncertain: their flag goes, and the record is reported."""
    source = ListSource([grant("P1"), grant("P2")])
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items.append(QuarantinedRecord("r-bad", "P1", QuarantineReason.BAD_TIMESTAMP, "recorded_at"))
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert [f.person_id for f in one.flags()] == ["P2"]
    assert report.plan is not None and [q.reason for q in report.plan.quarantined] == [QuarantineReason.BAD_TIMESTAMP]
    assert [r.reason for r in state.report() if r.kind == "quarantined"] == ["BAD_TIMESTAMP:recorded_at"]


def test_dry_run_writes_nothing(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A dry run plans but neither writes to One nor records a run."""
    report = make_service(ListSource([grant("P1")]), one, state, tmp_path).sync(trigger=RunTrigger.OPERATOR, dry_run=True)
    assert report.plan is not None and report.plan.adds == ("P1",)
    assert one.flags() == []
    assert state.recent_runs() == []


def test_a_second_writer_is_refused(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """While one run holds the lock, another gives up with RunInProgressError."""
    service = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    with RunLock(f"sqlite:///{tmp_path / 'state.db'}", wait_seconds=0), pytest.raises(RunInProgressError):
        service.sync(trigger=RunTrigger.OPERATOR)


def test_stop_request_ends_the_run_early(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """After a stop is requested no new write starts and the run is recorded as interrupted."""
    service = make_service(ListSource([grant(f"P{n}") for n in range(20)]), one, state, tmp_path)
    service.stop_event.set()
    report = service.sync(trigger=RunTrigger.SCHEDULED_FULL)
    assert report.outcome is RunOutcome.INTERRUPTED
    assert one.flags() == []
    assert state.recent_runs(1)[0].outcome is RunOutcome.INTERRUPTED


def test_state_store_holds_no_raw_ids(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """After adds, removals, holds, quarantines and failures, the state file holds no person or record id."""
    source = ListSource([grant("CANARYP1", "CANARYREC1"), grant("CANARYP2", "CANARYREC2")])
    service = make_service(source, one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    source.items = [withdraw("CANARYP1", "CANARYREC3"), QuarantinedRecord("CANARYREC4", "CANARYP2", QuarantineReason.BAD_BOOLEAN)]
    one.fail_next(1, RetriableRemoteError("down", status=503, code="UPSTREAM_UNAVAILABLE"), operation="remove_flag")
    service.sync(trigger=RunTrigger.OPERATOR)
    state.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"CANARY" not in blob


def test_an_unexpected_error_in_a_write_stops_the_others(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A bug inside one write is raised to the caller and no further write starts."""

    class Boom(Exception):
        pass

    calls = 0

    def create_flag(person_id: str, key: str) -> object:
        nonlocal calls
        calls += 1
        raise Boom

    one.create_flag = create_flag  # type: ignore[method-assign]
    service = make_service(ListSource([grant(f"P{n:03d}") for n in range(200)]), one, state, tmp_path)
    with pytest.raises(Boom):
        service.sync(trigger=RunTrigger.OPERATOR)
    assert calls <= 4  # at most one per worker


# --------------------------------------------------------------------------------------------
# Interrupted runs keep their audit trail and their record (issue 6)


class _StopAfter(InMemoryFlagGateway):
    """One that takes creates normally, then acts out what happens at the `after`-th one."""

    def __init__(self, after: int, action: Callable[[], None]) -> None:
        super().__init__(any_person=True)
        self._after = after
        self._action = action
        self._creates = 0
        self._counter = threading.Lock()

    def create_flag(self, person_id: str, idempotency_key: str) -> CreateOutcome:
        with self._counter:
            self._creates += 1
            n = self._creates
        if n == self._after:
            self._action()
        return super().create_flag(person_id, idempotency_key)


def test_a_hard_interrupt_mid_apply_keeps_every_confirmed_change_audited(state: SqlStateStore, tmp_path: Path) -> None:
    """Ctrl-C during the writes: the run is recorded as interrupted and every flag made is in the audit trail."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    one = _StopAfter(30, interrupt)
    service = make_service(ListSource([grant(f"P{n:03d}") for n in range(200)]), one, state, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        service.sync(trigger=RunTrigger.OPERATOR)
    made = {f.person_id for f in one.flags()}
    assert 20 <= len(made) < 200
    audited = [e for e in state.audit_events(None, None) if e.action == "add"]
    pseudonymizer = Pseudonymizer(b"test-key-0123456789")
    assert {e.person for e in audited} == {pseudonymizer.person(p) for p in made}
    assert state.recent_runs(1)[0].outcome is RunOutcome.INTERRUPTED


def test_a_full_disk_stops_further_writes_and_keeps_what_was_written(state: SqlStateStore, tmp_path: Path) -> None:
    """When the audit trail cannot be written, no further change is started, and the batches already written stay."""
    one = InMemoryFlagGateway(any_person=True)
    batches: list[int] = []
    real = state.record_events

    def record_events(run_id: str, events: Sequence[AuditEntry], at: datetime) -> None:
        if len(batches) == 1:
            raise StateError("state store failed to record audit events (OperationalError)")
        batches.append(len(events))
        real(run_id, events, at)

    state.record_events = record_events  # type: ignore[method-assign]
    service = make_service(ListSource([grant(f"P{n:03d}") for n in range(400)]), one, state, tmp_path)
    with pytest.raises(StateError):
        service.sync(trigger=RunTrigger.OPERATOR)
    assert batches == [AUDIT_BATCH]
    assert len(state.audit_events(None, None)) == AUDIT_BATCH
    # The writes stopped: at most the unaudited window (the batch that failed and the next) went ahead.
    assert len(one.flags()) <= AUDIT_BATCH + MAX_UNAUDITED
    assert state.recent_runs(1)[0].outcome is RunOutcome.ERROR


def test_audit_events_are_written_while_the_run_goes_on(state: SqlStateStore, tmp_path: Path) -> None:
    """Confirmed changes reach the audit trail in batches during the run, not only when it ends."""
    seen: list[int] = []

    def look() -> None:
        seen.append(len(state.audit_events(None, None)))

    one = _StopAfter(350, look)
    service = make_service(ListSource([grant(f"P{n:03d}") for n in range(400)]), one, state, tmp_path)
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.CONVERGED
    assert seen and seen[0] >= 350 - MAX_UNAUDITED - AUDIT_BATCH
    assert len(state.audit_events(None, None)) == 400


def test_a_run_killed_without_a_record_is_marked_abandoned_by_the_next(
    one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path
) -> None:
    """A run left without an outcome (SIGKILL) is abandoned once another run holds the lock."""
    killed = state.start_run(RunTrigger.OPERATOR, NOW)
    service = make_service(ListSource([grant("P1")]), one, state, tmp_path)
    service.sync(trigger=RunTrigger.OPERATOR)
    outcomes = {r.run_id: r.outcome for r in state.recent_runs()}
    assert outcomes[killed] is RunOutcome.ABANDONED
    assert RunOutcome.CONVERGED in outcomes.values()


def test_a_stop_while_reading_ends_the_run_as_interrupted(one: InMemoryFlagGateway, state: SqlStateStore, tmp_path: Path) -> None:
    """A stop requested while a large source is read ends the run before planning, recorded as interrupted."""
    service = make_service(ListSource([grant(f"P{n:05d}") for n in range(5000)]), one, state, tmp_path)

    class Reading(ListSource):
        def read_all(self, now: datetime) -> Iterator[SourceItem]:
            for n, item in enumerate(super().read_all(now)):
                if n == 1500:
                    service.stop_event.set()
                yield item

    service._source = Reading([grant(f"P{n:05d}") for n in range(5000)])
    report = service.sync(trigger=RunTrigger.OPERATOR)
    assert report.outcome is RunOutcome.INTERRUPTED
    assert report.plan is None
    assert one.flags() == []
