"""The consent rule: which of a person's records decides, and what that record means for the flag.

Pure functions; no I/O, no clock, no logging. The rule (docs/consent-records.md),
decided per One person id:

1. Any invalid (quarantined) record naming the person makes them UNCERTAIN, whatever the dates of
   their valid records: no flag. Privacy fails closed.
2. Otherwise the deciding record is the most decisive valid record (`more_decisive`): the latest
   `recorded_at`; on a tie the more restrictive record; on a full tie the lowest `record_id`.
3. Its verdict (`verdict`) is checked in this order: refused → REFUSED, withdrawn → WITHDRAWN,
   `informed` not true → NOT_INFORMED, `expires_at` at or before now → EXPIRED, case closed →
   CASE_CLOSED, accepted versions configured and `consent_version` not among them →
   VERSION_NOT_ACCEPTED, else GRANTED. Only GRANTED wants a flag.

The fold that applies this rule to a whole source, one person at a time, is `flagsync.core.fold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from flagsync.core.model import CaseStatus, ConsentRecord, Decision, QuarantinedRecord, Rules, SourceItem, Verdict

__all__ = ["DECISION_RANK", "decide", "more_decisive", "restrictiveness", "verdict"]

#: How restrictive each decision is when two records share a `recorded_at`: higher wins. Withdrawn
#: ranks above refused (it ends a consent once given); both mean no flag, so the order only fixes the reason.
DECISION_RANK: Mapping[Decision, int] = MappingProxyType({Decision.GRANTED: 0, Decision.REFUSED: 1, Decision.WITHDRAWN: 2})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def restrictiveness(record: ConsentRecord) -> tuple[int, int, int, int, int]:
    """Higher is more restrictive; judged without a clock or rules, so every run orders records alike.

    Public for the compact fold (`flagsync.core.fold`), which orders records kept field by field alike.

    The decision comes first. Between two grants recorded at the same instant, the one not (known to
    be) informed, then the one whose case is closed, then the one that expires (earliest first) is
    preferred, so that a tie never lets a usable consent hide an unusable one.
    """
    expiry = 0 if record.expires_at is None else -((record.expires_at - _EPOCH) // _MICROSECOND)
    return (
        DECISION_RANK[record.decision],
        0 if record.informed is True else 1,
        1 if record.case_status is CaseStatus.CLOSED else 0,
        0 if record.expires_at is None else 1,
        expiry,
    )


def more_decisive(a: ConsentRecord, b: ConsentRecord) -> ConsentRecord:
    """The one of two valid records of a person that decides between them.

    The later `recorded_at` wins. On a tie the more restrictive wins: withdrawn over refused over
    granted, and between grants the less usable one (see `restrictiveness`). On a full tie the lower
    `record_id` wins. The choice is commutative and associative, so a fold over any order of a
    person's records reaches the same deciding record.
    """
    if a.recorded_at != b.recorded_at:
        return a if a.recorded_at > b.recorded_at else b
    rank_a, rank_b = restrictiveness(a), restrictiveness(b)
    if rank_a != rank_b:
        return a if rank_a > rank_b else b
    if a.record_id != b.record_id:
        return a if a.record_id < b.record_id else b
    if a == b:
        return a
    # Two different records with one id: the source should have quarantined them; stay deterministic anyway.
    return a if repr(a) < repr(b) else b


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def verdict(deciding: ConsentRecord | None, *, uncertain: bool, now: datetime, rules: Rules) -> Verdict:  # noqa: PLR0911  # one return per step of the rule reads like the spec
    """What the consent rule says for a person with records, given their deciding valid record.

    `uncertain` (any quarantined record of theirs) gives UNCERTAIN whatever `deciding` says; `deciding`
    may be None only then (a person whose every record is invalid). A person with no records at all
    wants no flag and is not this function's business: it raises ValueError for that.
    """
    _require_aware(now)
    if uncertain:
        return Verdict.UNCERTAIN
    if deciding is None:
        raise ValueError("a person who is not uncertain needs a deciding record")
    if deciding.decision is Decision.REFUSED:
        return Verdict.REFUSED
    if deciding.decision is Decision.WITHDRAWN:
        return Verdict.WITHDRAWN
    if deciding.informed is not True:
        return Verdict.NOT_INFORMED
    if deciding.expires_at is not None and deciding.expires_at <= now:
        return Verdict.EXPIRED
    if deciding.case_status is not CaseStatus.OPEN:
        return Verdict.CASE_CLOSED
    if rules.accepted_versions and deciding.consent_version not in rules.accepted_versions:
        return Verdict.VERSION_NOT_ACCEPTED
    return Verdict.GRANTED


def decide(items: Iterable[SourceItem], now: datetime, rules: Rules) -> Verdict:
    """The verdict over all the items of ONE person (every quarantined item counts against them).

    Raises ValueError when there is no item, or when valid records name more than one person.
    """
    uncertain = False
    deciding: ConsentRecord | None = None
    for item in items:
        if isinstance(item, QuarantinedRecord):
            uncertain = True
            continue
        if deciding is not None and item.person_id != deciding.person_id:
            raise ValueError("decide() takes the records of one person only")
        deciding = item if deciding is None else more_decisive(deciding, item)
    return verdict(deciding, uncertain=uncertain, now=now, rules=rules)
