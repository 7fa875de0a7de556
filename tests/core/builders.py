"""Small builders and hypothesis strategies for consent records, quarantined records and flags."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from flagsync.core.model import (
    CaseStatus,
    ConsentedBy,
    ConsentRecord,
    Decision,
    Flag,
    QuarantinedRecord,
    QuarantineReason,
    SourceItem,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def at(hours: int) -> datetime:
    """A timestamp `hours` after T0 (small integers make ties easy to write)."""
    return T0 + timedelta(hours=hours)


def rec(
    record_id: str = "r1",
    person_id: str | None = "P1",
    decision: Decision = Decision.GRANTED,
    *,
    informed: bool | None = True,
    recorded_at: datetime = T0,
    expires_at: datetime | None = None,
    case_status: CaseStatus = CaseStatus.OPEN,
    consent_version: str | None = None,
    consented_by: ConsentedBy | None = ConsentedBy.PARENT,
) -> ConsentRecord:
    """A consent record that is a usable grant unless told otherwise."""
    return ConsentRecord(
        record_id=record_id,
        person_id=person_id,
        decision=decision,
        informed=informed,
        consented_by=consented_by,
        recorded_at=recorded_at,
        expires_at=expires_at,
        case_status=case_status,
        consent_version=consent_version,
    )


def bad(
    record_id: str | None = "q1", person_id: str | None = "P1", reason: QuarantineReason = QuarantineReason.BAD_BOOLEAN
) -> QuarantinedRecord:
    """A quarantined record."""
    return QuarantinedRecord(record_id=record_id, person_id=person_id, reason=reason, field="informed")


def flag(involvement_id: str, person_id: str, version: int = 1) -> Flag:
    """One of our flags as One lists it."""
    return Flag(involvement_id=involvement_id, person_id=person_id, version=version)


# ---------------------------------------------------------------------------------------------
# Hypothesis strategies: a small pool of people, times and ids so that collisions and ties are common.

PEOPLE = ("A", "B", "C", "D")
persons = st.sampled_from(PEOPLE)
times = st.integers(min_value=0, max_value=2).map(lambda h: T0 + timedelta(days=h * 30))
expiries = st.none() | st.integers(min_value=0, max_value=8).map(lambda h: T0 + timedelta(days=h * 30))
record_ids = st.integers(min_value=0, max_value=9999).map(lambda n: f"r{n:04d}")

consent_records = st.builds(
    ConsentRecord,
    record_id=record_ids,
    person_id=st.none() | persons | persons | persons,
    decision=st.sampled_from(Decision),
    informed=st.sampled_from((True, True, True, False, None)),
    consented_by=st.none() | st.sampled_from(ConsentedBy),
    recorded_at=times,
    expires_at=expiries,
    case_status=st.sampled_from((CaseStatus.OPEN, CaseStatus.OPEN, CaseStatus.OPEN, CaseStatus.CLOSED)),
    consent_version=st.sampled_from((None, "v1", "v2")),
)

quarantined_records = st.builds(
    QuarantinedRecord,
    record_id=st.none() | record_ids,
    person_id=st.none() | persons,
    reason=st.sampled_from(QuarantineReason),
    field=st.none() | st.sampled_from(("informed", "recorded_at")),
)


@st.composite
def source_items(draw: st.DrawFn, max_size: int = 12, quarantine: bool = True) -> list[SourceItem]:
    """A source's items with unique record ids, as a real source guarantees for valid records."""
    valid = draw(st.lists(consent_records, max_size=max_size, unique_by=lambda r: r.record_id))
    invalid: list[QuarantinedRecord] = draw(st.lists(quarantined_records, max_size=2)) if quarantine else []
    items: list[SourceItem] = [*valid, *invalid]
    return draw(st.permutations(items))


@st.composite
def current_flags(draw: st.DrawFn) -> list[Flag]:
    """One's listing of our flags over the same people, duplicates per person included."""
    owners = draw(st.lists(st.sampled_from((*PEOPLE, "E")), max_size=8))
    return [Flag(involvement_id=f"inv{i:03d}", person_id=p, version=1) for i, p in enumerate(owners)]


@st.composite
def one_persons_records(draw: st.DrawFn) -> list[ConsentRecord]:
    """Several valid records of one person over two instants, so that ties between decisions are the rule."""
    records = draw(st.lists(consent_records, min_size=1, max_size=6, unique_by=lambda r: r.record_id))
    instants = (T0, T0 + timedelta(days=1))
    return [replace(r, person_id="A", recorded_at=draw(st.sampled_from(instants))) for r in records]
