"""Turns one consent-record row into a valid `ConsentRecord` or a `QuarantinedRecord`, with no I/O.

The row is keyed by contract column names (adapters rename source columns first). Values may be
text, None, or what a database driver returns (datetime, date, bool, int). Surrounding whitespace
is stripped and an empty value counts as absent.

Checks run in this order and the first failure wins (so each bad record gets one reason):

1. ``record_id``: absent → MISSING_FIELD; longer than 128 characters → FIELD_TOO_LONG.
2. duplicate record id (decided by the adapter, passed in) → DUPLICATE_RECORD_ID.
3. ``person_id``: absent → the record is *unmatched* (person_id None) but still fully checked;
   present and not One's id pattern → BAD_PERSON_ID.
4. ``decision``: absent → MISSING_FIELD; not granted/refused/withdrawn (any case) → BAD_DECISION.
5. ``informed``: present and not true/false/yes/no/1/0 (any case) → BAD_BOOLEAN; absent when the
   decision is granted → MISSING_FIELD.
6. ``consented_by``: present and not parent/carer/young_person/other (any case; a space or hyphen
   may stand for the underscore) → BAD_CONSENTED_BY; absent when granted → MISSING_FIELD.
7. ``recorded_at``: absent → MISSING_FIELD; not an ISO-8601 date-time → BAD_TIMESTAMP; more than
   five minutes after `now` → FUTURE_TIMESTAMP. A date without a time is rejected here: ordering
   decisions by day alone could let a same-day grant outrank a withdrawal.
8. ``expires_at`` (optional): not an ISO-8601 date or date-time → BAD_TIMESTAMP. A plain date
   means the consent holds through that whole day and lapses at the start of the next day in
   the configured zone.
9. ``case_status``: absent → MISSING_FIELD; not open/closed (any case) → BAD_CASE_STATUS.
10. ``consent_version`` (optional): longer than 64 characters → FIELD_TOO_LONG.
11. ``updated_at`` (optional): not an ISO-8601 date-time → BAD_TIMESTAMP.

Timestamps use the ISO-8601 extended format (``2026-11-24T20:00:00``, a space may replace the
``T``, optional fraction, optional ``Z`` or ``±hh[:mm]`` offset). A naive value is wall-clock time
in the configured zone: an ambiguous time (clocks going back) is the earlier instant, and a time
that does not exist (clocks going forward) is read with the offset in force before the change
(PEP 495, fold=0), landing just after the gap. Every timestamp is returned in UTC.

A quarantined record keeps its record id only if it is present and short enough, and its person
id only if well formed; nothing else from the row survives, and no value is ever put into an
exception or a result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from flagsync.core.model import (
    CONTRACT_COLUMNS,
    MAX_RECORD_ID_LENGTH,
    CaseStatus,
    ConsentedBy,
    ConsentRecord,
    Decision,
    QuarantinedRecord,
    QuarantineReason,
    SourceItem,
    is_valid_person_id,
)
from flagsync.errors import ConfigError

#: Longest accepted consent form version.
MAX_CONSENT_VERSION_LENGTH = 64

#: How far in the future `recorded_at` may lie (clock skew between systems) before it is invalid.
FUTURE_TOLERANCE = timedelta(minutes=5)

#: Columns a source may lack; their values are then None.
OPTIONAL_COLUMNS: tuple[str, ...] = ("expires_at", "consent_version", "updated_at")

#: Columns a source must have (their values may still be optional, e.g. `informed` when refused).
REQUIRED_COLUMNS: tuple[str, ...] = tuple(name for name in CONTRACT_COLUMNS if name not in OPTIONAL_COLUMNS)

_E = TypeVar("_E", Decision, ConsentedBy, CaseStatus)

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?(Z|z|[+-]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?)?",
    re.ASCII,
)


def resolve_column_map(columns: Mapping[str, str] | None) -> dict[str, str]:
    """The full contract-name → source-column map: identity, overridden by `columns`.

    Raises ConfigError naming any key that is not a contract column, or any empty source name.
    """
    overrides = dict(columns or {})
    unknown = sorted(name for name in overrides if name not in CONTRACT_COLUMNS)
    if unknown:
        raise ConfigError(f"source.columns names unknown contract column(s): {', '.join(unknown)}")
    blank = sorted(name for name, source in overrides.items() if not isinstance(source, str) or not source.strip())
    if blank:
        raise ConfigError(f"source.columns maps {', '.join(blank)} to an empty column name")
    return {name: overrides.get(name, name).strip() for name in CONTRACT_COLUMNS}


def normalize_text(value: object) -> str | None:
    """A value as stripped text; None when absent or blank (how ids are compared across sources)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    text = text.strip()
    return text or None


def normalize_person_id(value: object) -> str | None:
    """The well-formed person id in `value`, or None when it is absent or malformed."""
    text = normalize_text(value)
    return text if text is not None and is_valid_person_id(text) else None


def parse_record(row: Mapping[str, object], *, now: datetime, zone: ZoneInfo, duplicate: bool = False) -> SourceItem:
    """Validate one row (keyed by contract column names) into a record or a quarantined record.

    `now` (timezone-aware) decides what counts as the future; `zone` is the zone of naive
    timestamps; `duplicate` says the source holds this record id more than once. Never raises
    for any row content.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    record_id = normalize_text(row.get("record_id"))
    try:
        return _validate(row, record_id, now, zone, duplicate)
    except _Rejected as rejected:
        kept_record_id = record_id if record_id is not None and len(record_id) <= MAX_RECORD_ID_LENGTH else None
        return QuarantinedRecord(kept_record_id, normalize_person_id(row.get("person_id")), rejected.reason, rejected.column)


class _Rejected(Exception):
    """Internal: a rule failed; carries the reason and column, never the value."""

    def __init__(self, reason: QuarantineReason, column: str) -> None:
        super().__init__(reason.value, column)
        self.reason = reason
        self.column = column


def _validate(row: Mapping[str, object], record_id: str | None, now: datetime, zone: ZoneInfo, duplicate: bool) -> ConsentRecord:
    if record_id is None:
        raise _Rejected(QuarantineReason.MISSING_FIELD, "record_id")
    if len(record_id) > MAX_RECORD_ID_LENGTH:
        raise _Rejected(QuarantineReason.FIELD_TOO_LONG, "record_id")
    if duplicate:
        raise _Rejected(QuarantineReason.DUPLICATE_RECORD_ID, "record_id")

    person_id = normalize_text(row.get("person_id"))
    if person_id is not None and not is_valid_person_id(person_id):
        raise _Rejected(QuarantineReason.BAD_PERSON_ID, "person_id")

    decision = _enum(row.get("decision"), Decision, QuarantineReason.BAD_DECISION, "decision")
    if decision is None:
        raise _Rejected(QuarantineReason.MISSING_FIELD, "decision")
    granted = decision is Decision.GRANTED

    informed = _boolean(row.get("informed"))
    if informed is None and granted:
        raise _Rejected(QuarantineReason.MISSING_FIELD, "informed")

    consented_by = _enum(row.get("consented_by"), ConsentedBy, QuarantineReason.BAD_CONSENTED_BY, "consented_by", spaced=True)
    if consented_by is None and granted:
        raise _Rejected(QuarantineReason.MISSING_FIELD, "consented_by")

    recorded_at = _timestamp(row.get("recorded_at"), zone, "recorded_at", dates_allowed=False)
    if recorded_at is None:
        raise _Rejected(QuarantineReason.MISSING_FIELD, "recorded_at")
    if recorded_at > now + FUTURE_TOLERANCE:
        raise _Rejected(QuarantineReason.FUTURE_TIMESTAMP, "recorded_at")

    expires_at = _timestamp(row.get("expires_at"), zone, "expires_at", dates_allowed=True)

    case_status = _enum(row.get("case_status"), CaseStatus, QuarantineReason.BAD_CASE_STATUS, "case_status")
    if case_status is None:
        raise _Rejected(QuarantineReason.MISSING_FIELD, "case_status")

    consent_version = normalize_text(row.get("consent_version"))
    if consent_version is not None and len(consent_version) > MAX_CONSENT_VERSION_LENGTH:
        raise _Rejected(QuarantineReason.FIELD_TOO_LONG, "consent_version")

    updated_at = _timestamp(row.get("updated_at"), zone, "updated_at", dates_allowed=False)

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
        updated_at=updated_at,
    )


def _enum(value: object, kind: type[_E], bad: QuarantineReason, column: str, *, spaced: bool = False) -> _E | None:
    text = normalize_text(value)
    if text is None:
        return None
    key = text.lower()
    if spaced:
        key = key.replace(" ", "_").replace("-", "_")
    try:
        return kind(key)
    except ValueError:
        raise _Rejected(bad, column) from None


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    text = normalize_text(value)
    if text is None:
        return None
    key = text.lower() if isinstance(value, str) else None
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise _Rejected(QuarantineReason.BAD_BOOLEAN, "informed")


def _timestamp(value: object, zone: ZoneInfo, column: str, *, dates_allowed: bool) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, datetime):
            return _to_utc(value, zone)
        if isinstance(value, date):
            if dates_allowed:
                return _end_of_day(value, zone)
            raise _Rejected(QuarantineReason.BAD_TIMESTAMP, column)
        if isinstance(value, str):
            text = value.strip()
            if _DATE.fullmatch(text):
                if dates_allowed:
                    return _end_of_day(date.fromisoformat(text), zone)
                raise _Rejected(QuarantineReason.BAD_TIMESTAMP, column)
            if _DATE_TIME.fullmatch(text):
                return _to_utc(datetime.fromisoformat(text), zone)
    except (ValueError, OverflowError):
        pass
    raise _Rejected(QuarantineReason.BAD_TIMESTAMP, column)


def _to_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone, fold=0)
    return moment.astimezone(UTC)


def _end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The instant a consent valid through `day` lapses: the start of the next day in `zone`."""
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)  # "valid through the last representable day": never lapses
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
