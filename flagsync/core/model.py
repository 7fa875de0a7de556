"""Domain values shared by the consent rule, the planner, the ports and the adapters.

Everything here is immutable and free of I/O. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

#: One's person id pattern; anything else is never put in a URL.
PERSON_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

#: Longest accepted consent record id.
MAX_RECORD_ID_LENGTH = 128

#: The only involvement type flagsync ever creates, and the team that owns it.
INVOLVEMENT_TYPE = "PIAS_WORKING_WITH_FAMILY"
SERVICE_TEAM = "PIAS"

#: The consent record contract's column names, in the order they are documented.
CONTRACT_COLUMNS: tuple[str, ...] = (
    "record_id",
    "person_id",
    "decision",
    "informed",
    "consented_by",
    "recorded_at",
    "expires_at",
    "case_status",
    "consent_version",
    "updated_at",
)


#: An id of ASCII letters and digits only, this long or shorter, is well formed without running
#: PERSON_ID_PATTERN (a letter or digit, then up to 63 letters, digits, ``_`` or ``-``).
PLAIN_PERSON_ID_LENGTH = 64


def is_valid_person_id(value: str) -> bool:
    """Whether `value` may be used as a One person id (and so appear in a URL).

    Plain ids (see PLAIN_PERSON_ID_LENGTH) skip the pattern: every id a listing of One or a consent
    table holds is checked, and most are plain.
    """
    if value.isalnum() and value.isascii() and len(value) <= PLAIN_PERSON_ID_LENGTH:
        return True
    return PERSON_ID_PATTERN.fullmatch(value) is not None


class Decision(StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ConsentedBy(StrEnum):
    PARENT = "parent"
    CARER = "carer"
    YOUNG_PERSON = "young_person"
    OTHER = "other"


class QuarantineReason(StrEnum):
    """Why a consent record was rejected as invalid (docs/consent-records.md)."""

    MISSING_FIELD = "MISSING_FIELD"
    BAD_DECISION = "BAD_DECISION"
    BAD_BOOLEAN = "BAD_BOOLEAN"
    BAD_CONSENTED_BY = "BAD_CONSENTED_BY"
    BAD_CASE_STATUS = "BAD_CASE_STATUS"
    BAD_TIMESTAMP = "BAD_TIMESTAMP"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    BAD_PERSON_ID = "BAD_PERSON_ID"
    DUPLICATE_RECORD_ID = "DUPLICATE_RECORD_ID"
    FIELD_TOO_LONG = "FIELD_TOO_LONG"


class Verdict(StrEnum):
    """The consent rule's answer for one person, with the reason; only GRANTED wants a flag."""

    GRANTED = "granted"
    UNCERTAIN = "uncertain"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    NOT_INFORMED = "not_informed"
    EXPIRED = "expired"
    CASE_CLOSED = "case_closed"
    VERSION_NOT_ACCEPTED = "version_not_accepted"

    @property
    def wants_flag(self) -> bool:
        return self is Verdict.GRANTED


#: Verdicts that are valid records but not a usable consent: listed for an operator's attention.
ATTENTION_VERDICTS = frozenset({Verdict.NOT_INFORMED, Verdict.VERSION_NOT_ACCEPTED})


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A valid consent record, holding only the contract's columns (never personal details)."""

    record_id: str
    person_id: str | None  # None: unmatched (no One person id); reported, nothing sent
    decision: Decision
    informed: bool | None
    consented_by: ConsentedBy | None
    recorded_at: datetime
    expires_at: datetime | None
    case_status: CaseStatus
    consent_version: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """A record that broke a rule. It never yields a flag and makes its person uncertain.

    `person_id` is set only when the record carried a well-formed person id, so that the person
    can be made uncertain; `field` names the contract column at fault (never its value).
    """

    record_id: str | None
    person_id: str | None
    reason: QuarantineReason
    field: str | None = None


#: What a consent source yields, one per row.
SourceItem = ConsentRecord | QuarantinedRecord


@dataclass(frozen=True, slots=True, order=True)
class Flag:
    """One of our involvements as One lists it."""

    involvement_id: str
    person_id: str
    version: int


@dataclass(frozen=True, slots=True)
class Rules:
    """The configurable parts of the consent rule and the mass-removal guard."""

    accepted_versions: frozenset[str] = frozenset()
    max_removals: int = 50
    max_removal_fraction: float = 0.10


@dataclass(frozen=True, slots=True)
class Attention:
    """A valid record that yields no flag for a reason an operator should look at."""

    person_id: str
    record_id: str
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused to hold a flag for a person (unknown, archived, merged, restricted): don't ask before `retry_at`."""

    reason: str  # a PersonIssue code
    retry_at: datetime


@dataclass(frozen=True, slots=True)
class Skipped:
    """A person who wants a flag, not asked for one this run because One refused them recently."""

    person_id: str
    reason: str  # the PersonIssue code One gave
    retry_at: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will do: the planner's only output. Persons are One person ids.

    `adds`: people who want a flag and have none. `removes`: flags to delete now. `held`: flags
    that should go but are held back by the mass-removal guard. `skipped`: people who want a flag
    but whom One refused recently (asked again at `retry_at`). `unchanged`: people whose flag is
    already right (flag wanted and present). `unmatched`: record ids without a person id. `scope`:
    the people a scoped plan was made for (None: a full reconcile).
    """

    adds: tuple[str, ...] = ()
    removes: tuple[Flag, ...] = ()
    held: tuple[Flag, ...] = ()
    unchanged: tuple[str, ...] = ()
    unmatched: tuple[str, ...] = ()
    quarantined: tuple[QuarantinedRecord, ...] = ()
    attention: tuple[Attention, ...] = ()
    current_flags: int = 0
    guard_tripped: bool = False
    skipped: tuple[Skipped, ...] = ()
    scope: frozenset[str] | None = field(default=None, compare=False)  # what it was made for, not what it does
    verdicts: Mapping[str, Verdict] = field(default_factory=dict, compare=False, repr=False)

    @property
    def not_found(self) -> tuple[str, ...]:
        """People of a scoped plan that nothing concerns: no consent record names them, and One holds no flag of theirs."""
        if self.scope is None:
            return ()
        flagged = {flag.person_id for flag in (*self.removes, *self.held)} | set(self.unchanged)
        return tuple(sorted(p for p in self.scope if p not in self.verdicts and p not in flagged))

    @property
    def has_changes(self) -> bool:
        return bool(self.adds or self.removes or self.held)


# ----------------------------------------------------------------------------------------------
# Runs


class RunOutcome(StrEnum):
    CONVERGED = "converged"  # exit 0
    CHANGES_FAILED = "changes_failed"  # exit 3
    HELD = "held"  # exit 4
    ERROR = "error"  # exit 1
    INTERRUPTED = "interrupted"  # stopped by a signal (or the lost run lock) before it finished
    ABANDONED = "abandoned"  # never recorded as finished (the process was killed); marked by the next run


class RunTrigger(StrEnum):
    OPERATOR = "operator"
    OPERATOR_PERSON = "operator_person"
    SCHEDULED_FULL = "scheduled_full"
    CHANGE_POLL = "change_poll"
    DEMO = "demo"
