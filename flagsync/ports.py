"""The interfaces the sync service needs, named by what it needs rather than by technology.

Adapters in `flagsync.adapters` implement them; `flagsync.bootstrap` wires the concrete ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from flagsync.core.model import Attention, Flag, QuarantinedRecord, Refusal, RunOutcome, RunTrigger, SourceItem

# --------------------------------------------------------------------------------------------
# Consent source


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in the source since a watermark.

    `person_ids` is None when the source cannot tell which people changed (the first poll, rows
    deleted from a table with `updated_at`): the caller should run a full reconcile instead.
    `watermark` is opaque to the caller; store it and pass it back next time.
    """

    person_ids: frozenset[str] | None
    watermark: str | None


class ConsentSource(Protocol):
    """Reads consent records; yields only the contract's columns, never personal details.

    Every method raises `SourceError` when the source cannot be read as a whole. Items are
    yielded as the source is read (streaming), so a caller must consume the iterator to the end
    before trusting it as complete: an error may come after some items.
    """

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        """Every record; `now` decides what counts as a future timestamp."""
        ...

    def read_person(self, person_id: str, now: datetime) -> Iterator[SourceItem]:
        """Every record naming this person id (quarantined ones included)."""
        ...

    def changes_since(self, watermark: str | None) -> Changes:
        """Which people have records changed since `watermark` (see `Changes`).

        Called every change poll (every second by default): while nothing changed it must cost next
        to nothing (a probe such as a file stat), reading records only after a change.
        """
        ...

    def describe(self) -> str:
        """A short description safe to print and log (no credentials)."""
        ...


# --------------------------------------------------------------------------------------------
# One


@dataclass(frozen=True, slots=True)
class PageProbe:
    """What `FlagGateway.probe` saw: how many flags the first page held, and whether more pages follow."""

    items: int
    more: bool


class CreateOutcome(StrEnum):
    CREATED = "created"
    ALREADY_PRESENT = "already_present"  # One answered 409 DUPLICATE_ACTIVE_INVOLVEMENT


class FlagGateway(Protocol):
    """Creates, lists and removes our own flags in One, and nothing else.

    Thread-safe: the service calls the write methods from several threads at once. Retriable
    failures are retried inside (within the configured budget); what escapes is a `RemoteError`
    subclass from `flagsync.errors`. `PersonUnavailable` says One will not hold a flag for that
    person.
    """

    def list_flags(self, *, cancel: threading.Event | None = None) -> list[Flag]:
        """Every active flag of ours, complete, or an exception: never a partial list.

        Once `cancel` is set the listing stops before its next page and raises `RunInterrupted`.
        """
        ...

    def person_flags(self, person_id: str) -> list[Flag]:
        """This person's active flags of ours (normally zero or one)."""
        ...

    def create_flag(self, person_id: str, idempotency_key: str) -> CreateOutcome:
        """Put the flag on this person; the same key must be used for every retry of one create."""
        ...

    def remove_flag(self, flag: Flag) -> None:
        """Delete this flag; already gone counts as done; a stale version is re-read and retried."""
        ...

    def probe(self) -> PageProbe:
        """Fetch a token and list the first page (of one item)."""
        ...


# --------------------------------------------------------------------------------------------
# The single-run lock


class RunFence(Protocol):
    """What a run holding the single-run lock can ask of it while it writes."""

    def check(self) -> None:
        """Raise `RunInterrupted` once the lock is no longer this run's (its connection dropped, its file went)."""
        ...


# --------------------------------------------------------------------------------------------
# State store


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    trigger: RunTrigger
    started_at: datetime
    finished_at: datetime | None
    outcome: RunOutcome | None
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class PendingRemoval:
    """A removal One has not yet confirmed. `person` is a pseudonym, never the raw id; `key_id` names its key."""

    involvement_id: str
    person: str
    since: datetime
    attempts: int
    held: bool
    key_id: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event to append to the audit trail, as the service knows it: the raw person id stays in memory.

    The store turns `person_id` into a pseudonym on the way in; what it gives back is an `AuditEvent`.
    Two types, so that a value holding a raw id can never be mistaken for one read from the trail.
    """

    action: str  # "add", "remove", "hold", ...
    person_id: str | None  # raw id, or None for an event about no one in particular
    outcome: str  # "ok", "already_present", "failed", "person_issue", "held", ...
    reason: str | None = None  # a reason code, never free text


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An event read back from the audit trail: pseudonymised, numbered, and signed into the chain."""

    event_id: int
    at: datetime
    run_id: str
    action: str  # "add", "remove", "hold", "fail", "quarantine", ...
    person: str | None  # pseudonym
    outcome: str
    reason: str | None
    key_id: str  # the key that made the pseudonym and signed the event's link


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """Where the audit chain first fails: the event (by id and time, never its pseudonym) and what is wrong."""

    event_id: int | None  # None when the chain's own records (head, anchor) are what is broken
    at: datetime | None
    problem: str


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The result of verifying the audit chain from its anchor to its head."""

    events: int  # how many events were checked before the first broken link (all of them when intact)
    first_id: int | None
    last_id: int | None
    key_ids: tuple[str, ...]  # the keys the checked events were signed with, in order of first use
    broken: BrokenLink | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of the last full run's report for `flagsync status`, pseudonymised."""

    kind: str  # "quarantined", "unmatched", "attention", "person_issue"
    subject: str  # pseudonym of the record or person
    reason: str
    key_id: str


class RunLog(Protocol):
    """Every run's trigger, times, outcome and counts."""

    def start_run(self, trigger: RunTrigger, started_at: datetime) -> str: ...

    def finish_run(self, run_id: str, outcome: RunOutcome, counts: Mapping[str, int], finished_at: datetime) -> None: ...

    def recent_runs(self, limit: int = 10) -> list[RunRecord]: ...

    def abandon_unfinished(self) -> int:
        """Mark every run not recorded as finished as `abandoned` (call only while holding the run lock)."""
        ...

    def run_history(self, since: date | None, until: date | None) -> list[RunRecord]:
        """Finished full runs (not person-scoped, not change polls) that ended on these UTC days (inclusive), oldest first."""
        ...

    def last_success(self, trigger: RunTrigger | None = None) -> datetime | None: ...


class PendingRemovals(Protocol):
    """Removals not yet confirmed by One: failed ones (retried every cycle) and held ones (kept until released)."""

    def mark_pending(self, flag: Flag, at: datetime, *, held: bool = False) -> None:
        """Remember a removal not yet confirmed (failed, or held by the guard)."""
        ...

    def clear_pending(self, involvement_id: str) -> None: ...

    def pending_removals(self) -> list[PendingRemoval]: ...


class AuditTrail(Protocol):
    """The append-only, hash-chained record of what flagsync did, and its reports."""

    def record_events(self, run_id: str, events: Sequence[AuditEntry], at: datetime) -> None:
        """Append these events, in order, to the chain (pseudonymised on the way in)."""
        ...

    def audit_events(self, since: date | None, until: date | None) -> list[AuditEvent]: ...

    def audit_counts(self, since: date | None, until: date | None) -> list[tuple[date, str, str, int]]:
        """(day, action, outcome, count) rows, ordered by day then action."""
        ...

    def purge_audit(self, before: datetime) -> int:
        """Remove the oldest events (a prefix of the chain) that happened before `before`; the chain stays verifiable."""
        ...

    def verify_audit(self) -> ChainCheck:
        """Check every link of the chain, from its anchor to its head."""
        ...


class ChangeWatermark(Protocol):
    """Where the change poll got to in the consent source (opaque to everyone but the source)."""

    def get_watermark(self) -> str | None: ...

    def set_watermark(self, watermark: str | None) -> None: ...


class LastRunReport(Protocol):
    """What the last full run found that needs a person: quarantined, unmatched, attention and refused records."""

    def replace_report(
        self,
        quarantined: Sequence[QuarantinedRecord],
        unmatched: Sequence[str],
        attention: Sequence[Attention],
        person_issues: Sequence[tuple[str, str]],
    ) -> None:
        """Replace the stored report of the last full run (pseudonymised on the way in)."""
        ...

    def report(self) -> list[ReportRow]: ...


class PersonRefusals(Protocol):
    """People One refused to hold a flag for, and until when flagsync leaves them alone (pseudonymised on the way in)."""

    def record_refusal(self, person_id: str, refusal: Refusal) -> None:
        """Remember that One refused this person until `refusal.retry_at`."""
        ...

    def refusals(self, now: datetime) -> Callable[[str], Refusal | None]:
        """A lookup, by raw person id, of the refusals still in force at `now` (for `build_plan`)."""
        ...

    def forget_expired_refusals(self, now: datetime) -> int:
        """Delete the refusals whose back-off is over; return how many went."""
        ...


class StateStore(RunLog, PendingRemovals, AuditTrail, ChangeWatermark, LastRunReport, PersonRefusals, Protocol):
    """All of the state flagsync keeps, as one adapter implements it; code should ask for the part it uses.

    Takes raw person ids where convenient and stores only their pseudonyms: nothing it keeps
    names a person or a consent record in the clear.
    """


# --------------------------------------------------------------------------------------------
# Telemetry


class Telemetry(Protocol):
    """What flagsync reports about its work, for metrics (`flagsync.metrics.Metrics`). Values are never ids.

    `NoTelemetry` does nothing; the service and the gateway take any object with these methods.
    """

    def run_finished(self, outcome: RunOutcome, trigger: RunTrigger, duration_s: float) -> None:
        """A run ended with this outcome."""
        ...

    def change_applied(self, action: str, outcome: str) -> None:
        """One write finished: action add/remove, outcome ok/failed/..."""
        ...

    def flags_in_one(self, count: int) -> None:
        """After a full listing: how many flags of ours One holds."""
        ...

    def removals_stored(self, pending: Sequence[PendingRemoval]) -> None:
        """The pending and held removals the state store holds now."""
        ...

    def quarantined_records(self, count: int) -> None:
        """After a full plan: how many consent records are quarantined."""
        ...

    def request_done(self, method: str, endpoint: str, status: int | None, seconds: float) -> None:
        """One HTTP request to One answered (status None: no answer), by endpoint template."""
        ...

    def retry_scheduled(self, endpoint: str, reason: str) -> None:
        """A request to One will be retried; `reason` is a contract or local code."""
        ...

    def credentials_refused(self, request: str) -> None:
        """One refused our client credentials (`token`) or our access token (`api`)."""
        ...


class NoTelemetry:
    """A `Telemetry` that records nothing."""

    def run_finished(self, outcome: RunOutcome, trigger: RunTrigger, duration_s: float) -> None:
        """Nothing recorded."""

    def change_applied(self, action: str, outcome: str) -> None:
        """Nothing recorded."""

    def flags_in_one(self, count: int) -> None:
        """Nothing recorded."""

    def removals_stored(self, pending: Sequence[PendingRemoval]) -> None:
        """Nothing recorded."""

    def quarantined_records(self, count: int) -> None:
        """Nothing recorded."""

    def request_done(self, method: str, endpoint: str, status: int | None, seconds: float) -> None:
        """Nothing recorded."""

    def retry_scheduled(self, endpoint: str, reason: str) -> None:
        """Nothing recorded."""

    def credentials_refused(self, request: str) -> None:
        """Nothing recorded."""
