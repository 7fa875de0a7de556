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

import contextlib
import dataclasses
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar, cast
from uuid import UUID
from zoneinfo import ZoneInfo

from flagsync.core.model import (
    CONTRACT_COLUMNS,
    MAX_RECORD_ID_LENGTH,
    PLAIN_PERSON_ID_LENGTH,
    CaseStatus,
    ConsentedBy,
    ConsentRecord,
    Decision,
    QuarantinedRecord,
    QuarantineReason,
    SourceItem,
    is_valid_person_id,
)

#: Longest accepted consent form version.
MAX_CONSENT_VERSION_LENGTH = 64

#: How far in the future `recorded_at` may lie (clock skew between systems) before it is invalid.
FUTURE_TOLERANCE = timedelta(minutes=5)

#: Columns a source may lack; their values are then None.
OPTIONAL_COLUMNS: tuple[str, ...] = ("expires_at", "consent_version", "updated_at")

_E = TypeVar("_E", Decision, ConsentedBy, CaseStatus)

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_BOOLEANS: Mapping[str, bool] = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}

_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?(Z|z|[+-]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?)?",
    re.ASCII,
)

# A text's shape is its UTF-8 bytes with every ASCII digit made a 9: ``2026-11-24`` → ``9999-99-99``.
# A shape made only of 9s and ASCII punctuation is the shape of an ASCII text (any other character
# encodes to bytes of 0x80 and above, which stay as they are), so comparing shapes checks the digits
# and the punctuation at once, without a regular expression.
#: Maps each ASCII digit's byte to ``9`` and every other byte to itself.
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9999999999")
#: The shape of a plain date: exactly what ``\d{4}-\d{2}-\d{2}`` (ASCII digits) matches.
_PLAIN_DATE_SHAPE = b"9999-99-99"


def _date_time_shapes() -> frozenset[bytes]:
    """The shapes of the common date-times: full seconds, a fraction of 1-9 digits, Z or ±hh:mm.

    Each is kept only if `_DATE_TIME` matches it. The pattern treats every ASCII digit alike (it
    names no particular digit), so it then matches every text of that shape too: looking a shape
    up here is only a shortcut for running the pattern, never a different answer.
    """
    fractions = ["", *(mark + "9" * digits for mark in ".," for digits in range(1, 10))]
    shapes = {
        f"9999-99-99{separator}99:99:99{fraction}{offset}".encode()
        for separator in "Tt "
        for fraction in fractions
        for offset in ("", "Z", "z", "+99:99", "-99:99")
    }
    return frozenset(shape for shape in shapes if _DATE_TIME.fullmatch(shape.decode()))


_DATE_TIME_SHAPES = _date_time_shapes()

#: (`flagsync.core.model.PLAIN_PERSON_ID_LENGTH`: the shortcut is inlined in RowParser.parse, the hot path.)
_PLAIN_PERSON_ID_LENGTH = PLAIN_PERSON_ID_LENGTH


def column_map(columns: Mapping[str, str] | None) -> dict[str, str]:
    """Every contract column with the source column that holds it: `columns` over identity.

    The names were checked by the settings (`source.columns`: contract names only, no empty column);
    a mapping built in code is trusted the same way.
    """
    chosen = dict(columns or {})
    return {name: chosen.get(name, name) for name in CONTRACT_COLUMNS}


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
    """The well-formed person id in `value`, or None when it is absent or malformed (or not an id's type)."""
    if not _person_id_type(value):
        return None
    text = normalize_text(value)
    return text if text is not None and is_valid_person_id(text) else None


def _person_id_type(value: object) -> bool:
    """Whether `value` is of a type a person id can be read from: text, UTF-8 bytes, a whole number or a UUID.

    Anything else would become a *different* id as text: True becomes "True", a float's infinity
    "inf", a date "2026-01-01", each a well-formed person id, and a large float loses digits.
    """
    return value is None or value.__class__ is int or isinstance(value, str | bytes | UUID)  # exactly int: not a bool


def parse_record(row: Mapping[str, object], *, now: datetime, zone: ZoneInfo, duplicate: bool = False) -> SourceItem:
    """Validate one row (keyed by contract column names) into a record or a quarantined record.

    `now` (timezone-aware) decides what counts as the future; `zone` is the zone of naive
    timestamps; `duplicate` says the source holds this record id more than once. Never raises
    for any row content. (Sources parse many rows with one `RowParser`, which this uses too.)
    """
    global _last_parser  # noqa: PLW0603 - a one-entry memo; a race only costs a fresh parser
    parser = _last_parser
    if parser is None or parser.now != now or parser.zone is not zone:
        # a parser for (now, zone), reused while callers keep asking for the same pair (its caches with it)
        parser = _last_parser = RowParser(now=now, zone=zone)
    if row.__class__ is dict:
        try:
            values = _contract_values(row)  # one C call for a plain dict holding every column
        except KeyError:
            values = tuple(map(row.get, CONTRACT_COLUMNS))
    else:
        values = tuple(map(row.get, CONTRACT_COLUMNS))
    return parser.parse(values, duplicate)


_contract_values = operator.itemgetter(*CONTRACT_COLUMNS)


#: Distinct timestamp texts remembered per parser and kind of column; the memory is cleared when full.
TIMESTAMP_CACHE_SIZE = 4096

_last_parser: RowParser | None = None


class RowParser:
    """Parses the rows of one read: values by position, in `CONTRACT_COLUMNS` order, timestamps cached by text.

    A source builds one per read (its column layout decided once) and hands each row over as a
    sequence whose first ten values are the contract columns (None for an absent optional column;
    anything after them is ignored). The rules are exactly those of `parse_record`. A timestamp text
    seen before is not parsed again: each kind of column (date-time only, or date allowed) keeps the
    result for up to `TIMESTAMP_CACHE_SIZE` distinct texts, forgetting them all when full. A naive
    time is converted with the zone's offset for its wall-clock hour, worked out once per hour
    (`_Hours`).
    """

    __slots__ = ("_date_times", "_dates_allowed", "_future_limit", "_hours", "now", "zone")

    def __init__(self, *, now: datetime, zone: ZoneInfo) -> None:
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        self.now = now
        self.zone = zone
        self._future_limit = now + FUTURE_TOLERANCE
        # Accepted texts, per kind of column (a plain date is accepted only where dates are allowed).
        self._date_times: dict[str, datetime] = {}
        self._dates_allowed: dict[str, datetime] = {}
        self._hours = _Hours(zone)

    def parse(self, values: Sequence[object], duplicate: bool = False) -> SourceItem:  # noqa: PLR0912, PLR0915 - one step per rule, in the documented order
        """One row's values (contract order) as a record or a quarantined record; never raises for any content.

        The rules run inline, one after the other, with the common spellings looked up first: this
        is every row's hot path, and each function call saved shows in rows per second.
        """
        raw = values[0]
        record_id = (raw.strip() or None) if raw.__class__ is str else _text(raw)
        try:
            if record_id is None:
                raise _Rejected(QuarantineReason.MISSING_FIELD, "record_id")
            if len(record_id) > MAX_RECORD_ID_LENGTH:
                raise _Rejected(QuarantineReason.FIELD_TOO_LONG, "record_id")
            if duplicate:
                raise _Rejected(QuarantineReason.DUPLICATE_RECORD_ID, "record_id")

            raw = values[1]
            if raw.__class__ is str:
                person_id = raw.strip() or None
            elif _person_id_type(raw):
                person_id = _text(raw)
            else:
                raise _Rejected(QuarantineReason.BAD_PERSON_ID, "person_id")
            # An id of ASCII letters and digits only, short enough, is well formed without the pattern.
            if (
                person_id is not None
                and not (person_id.isalnum() and person_id.isascii() and len(person_id) <= _PLAIN_PERSON_ID_LENGTH)
                and not is_valid_person_id(person_id)
            ):
                raise _Rejected(QuarantineReason.BAD_PERSON_ID, "person_id")

            raw = values[2]
            decision = _DECISION_SPELLINGS.get(raw) if raw.__class__ is str else None
            if decision is None:
                decision = _member(raw, _DECISIONS, QuarantineReason.BAD_DECISION, "decision")
                if decision is None:
                    raise _Rejected(QuarantineReason.MISSING_FIELD, "decision")
            granted = decision is Decision.GRANTED

            raw = values[3]
            informed = _BOOLEAN_SPELLINGS[raw] if raw.__class__ is str and raw in _BOOLEAN_SPELLINGS else _boolean(raw)
            if informed is None and granted:
                raise _Rejected(QuarantineReason.MISSING_FIELD, "informed")

            raw = values[4]
            consented_by = _CONSENTED_BY_SPELLINGS.get(raw) if raw.__class__ is str else None
            if consented_by is None and raw is not None:
                consented_by = _member(raw, _CONSENTED_BY, QuarantineReason.BAD_CONSENTED_BY, "consented_by", spaced=True)
            if consented_by is None and granted:
                raise _Rejected(QuarantineReason.MISSING_FIELD, "consented_by")

            raw = values[5]
            recorded_at = self._date_times.get(raw) if raw.__class__ is str else None
            if recorded_at is None:
                recorded_at = self._timestamp(raw, "recorded_at", self._date_times)
                if recorded_at is None:
                    raise _Rejected(QuarantineReason.MISSING_FIELD, "recorded_at")
            if recorded_at > self._future_limit:
                raise _Rejected(QuarantineReason.FUTURE_TIMESTAMP, "recorded_at")

            raw = values[6]
            expires_at = self._dates_allowed.get(raw) if raw.__class__ is str else None
            if expires_at is None and raw is not None:
                expires_at = self._timestamp(raw, "expires_at", self._dates_allowed)

            raw = values[7]
            case_status = _CASE_STATUS_SPELLINGS.get(raw) if raw.__class__ is str else None
            if case_status is None:
                case_status = _member(raw, _CASE_STATUSES, QuarantineReason.BAD_CASE_STATUS, "case_status")
                if case_status is None:
                    raise _Rejected(QuarantineReason.MISSING_FIELD, "case_status")

            raw = values[8]
            consent_version = (raw.strip() or None) if raw.__class__ is str else _text(raw)
            if consent_version is not None and len(consent_version) > MAX_CONSENT_VERSION_LENGTH:
                raise _Rejected(QuarantineReason.FIELD_TOO_LONG, "consent_version")

            raw = values[9]
            updated_at = self._date_times.get(raw) if raw.__class__ is str else None
            if updated_at is None and raw is not None:
                updated_at = self._timestamp(raw, "updated_at", self._date_times)
        except _Rejected as rejected:
            kept_record_id = record_id if record_id is not None and len(record_id) <= MAX_RECORD_ID_LENGTH else None
            return QuarantinedRecord(kept_record_id, normalize_person_id(values[1]), rejected.reason, rejected.column)
        return _new_record(
            record_id,
            person_id,
            decision,
            informed,
            consented_by,
            recorded_at,
            expires_at,
            case_status,
            consent_version,
            updated_at,
        )

    def _timestamp(self, value: object, column: str, accepted: dict[str, datetime]) -> datetime | None:
        """A timestamp value in UTC; None when absent. Raises _Rejected(BAD_TIMESTAMP, `column`) for anything else.

        `accepted` is the cache of the column's kind (date-time only, or date allowed); the caller
        has already looked the value up there, and a text's answer is kept in it. A text is
        accepted when it matches the extended-format pattern `_DATE_TIME` and
        `datetime.fromisoformat` reads it (fromisoformat alone reads more: week dates, the basic
        format, any separator). The pattern is only run for a text whose shape (see
        `_DIGITS_AS_NINES`) is not one of `_DATE_TIME_SHAPES`, each of which it is known to match;
        a plain date is exactly the shape ``9999-99-99``. Other values (what a driver returns)
        follow `_value_timestamp`.
        """
        dates_allowed = accepted is self._dates_allowed
        if not isinstance(value, str):
            return _value_timestamp(value, self._hours, column, dates_allowed=dates_allowed)
        text = value.strip()
        if not text:
            return None
        try:
            # (see _DIGITS_AS_NINES; a lone surrogate cannot be encoded: a ValueError, so a bad timestamp,
            # as the ASCII-only pattern finds for any text with one)
            shape = text.encode().translate(_DIGITS_AS_NINES)
            if shape == _PLAIN_DATE_SHAPE:
                if not dates_allowed:
                    raise _Rejected(QuarantineReason.BAD_TIMESTAMP, column)
                moment = _end_of_day(date.fromisoformat(text), self.zone)
            else:
                moment = datetime.fromisoformat(text)
                if shape not in _DATE_TIME_SHAPES and not _DATE_TIME.fullmatch(text):
                    raise _Rejected(QuarantineReason.BAD_TIMESTAMP, column)
                tzinfo = moment.tzinfo
                if tzinfo is None:
                    moment = self._hours.wall_to_utc(moment)
                elif tzinfo is not UTC:  # fromisoformat gives UTC itself for Z and +00:00: nothing to convert
                    moment = moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise _Rejected(QuarantineReason.BAD_TIMESTAMP, column) from None
        if value.__class__ is str:  # not a subclass, which might compare or hash differently
            if len(accepted) >= TIMESTAMP_CACHE_SIZE:
                accepted.clear()
            accepted[value] = moment
        return moment


def _record_builder() -> Callable[..., ConsentRecord]:
    """A positional ConsentRecord constructor that fills the slots directly.

    ConsentRecord is a frozen, slotted dataclass: its generated __init__ sets each field through
    object.__setattr__, which costs about as much as the rest of a row's parsing. Instead the
    builder fills an unfrozen class with exactly the same slots by plain attribute assignment, then
    makes it a ConsentRecord by assigning ``__class__`` (Python allows that between classes of the
    same layout: same base, same slots). The object is then a ConsentRecord like any other (equal,
    same fields, same hash), built in a third of the constructor's time. If the dataclass ever
    stops being exactly these slots, or the layouts stop matching, the ordinary constructor is used.
    """
    names = tuple(f.name for f in dataclasses.fields(ConsentRecord))
    plain = "__post_init__" not in vars(ConsentRecord) and getattr(ConsentRecord, "__slots__", ()) == names
    if names != _RECORD_FIELDS or not plain:
        return ConsentRecord
    unfrozen = type("_UnfrozenConsentRecord", (), {"__slots__": names, "__module__": __name__})
    new = object.__new__
    probe: Any = new(unfrozen)
    try:
        probe.__class__ = ConsentRecord
    except TypeError:  # the layouts differ after all
        return ConsentRecord

    def build(  # noqa: PLR0917 - positional on purpose: this is the hot path of every read
        record_id: str,
        person_id: str | None,
        decision: Decision,
        informed: bool | None,
        consented_by: ConsentedBy | None,
        recorded_at: datetime,
        expires_at: datetime | None,
        case_status: CaseStatus,
        consent_version: str | None,
        updated_at: datetime | None,
    ) -> ConsentRecord:
        record: Any = new(unfrozen)
        record.record_id = record_id
        record.person_id = person_id
        record.decision = decision
        record.informed = informed
        record.consented_by = consented_by
        record.recorded_at = recorded_at
        record.expires_at = expires_at
        record.case_status = case_status
        record.consent_version = consent_version
        record.updated_at = updated_at
        record.__class__ = ConsentRecord
        return cast("ConsentRecord", record)

    return build


#: The fields the fast builder sets, in order: ConsentRecord keeps the contract columns in contract order.
_RECORD_FIELDS = CONTRACT_COLUMNS
_new_record = _record_builder()


class _Rejected(Exception):
    """Internal: a rule failed; carries the reason and column, never the value."""

    def __init__(self, reason: QuarantineReason, column: str) -> None:
        super().__init__(reason.value, column)
        self.reason = reason
        self.column = column


_DECISIONS: Mapping[str, Decision] = {member.value: member for member in Decision}
_CONSENTED_BY: Mapping[str, ConsentedBy] = {member.value: member for member in ConsentedBy}
_CASE_STATUSES: Mapping[str, CaseStatus] = {member.value: member for member in CaseStatus}


def _text(value: object) -> str | None:
    """`normalize_text`, with the common cases (None, a str) first."""
    if value is None:
        return None
    if value.__class__ is str:
        text = value.strip()
        return text or None
    return normalize_text(value)


def _member(value: object, members: Mapping[str, _E], bad: QuarantineReason, column: str, *, spaced: bool = False) -> _E | None:
    """The enum member a text names (any case; `spaced`: a space or hyphen may stand for the underscore)."""
    text = _text(value)
    if text is None:
        return None
    key = text.lower()
    if spaced:
        key = key.replace(" ", "_").replace("-", "_")
    member = members.get(key)
    if member is None:
        raise _Rejected(bad, column)
    return member


def _boolean(value: object) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    text = normalize_text(value)
    if text is None:
        return None
    key = text.lower() if isinstance(value, str) else None
    flag = _BOOLEANS.get(key) if key is not None else None
    if flag is None:
        raise _Rejected(QuarantineReason.BAD_BOOLEAN, "informed")
    return flag


def _value_timestamp(value: object, hours: _Hours, column: str, *, dates_allowed: bool) -> datetime | None:
    """A timestamp value that is not text in UTC; None when absent. Raises _Rejected(BAD_TIMESTAMP) for anything else.

    A datetime is converted (a naive one is wall-clock time in the zone); a date is accepted only
    where dates are allowed, as the end of that day.
    """
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            return hours.wall_to_utc(value) if value.utcoffset() is None else value.astimezone(UTC)
        if isinstance(value, date) and dates_allowed:
            return _end_of_day(value, hours.zone)
    except (ValueError, OverflowError):
        pass
    raise _Rejected(QuarantineReason.BAD_TIMESTAMP, column)


class _Hours:
    """Converts datetimes to UTC, naive ones as wall-clock time in `zone` (fold=0), by the hour.

    ``moment.replace(tzinfo=zone, fold=0).astimezone(UTC)`` costs over a microsecond, mostly the
    zone's offset lookup. Within a wall-clock hour whose offset is the same throughout, a naive
    moment is the hour's start in UTC plus the time since the start, so the zone is asked once per
    hour. An hour counts as uniform when its first and last microsecond have the same offset with
    both folds: a single transition inside the hour makes the two ends differ, and no zone has two
    transitions less than days apart (tests/core/test_timestamp_shapes.py checks every installed
    zone). Any other hour, one whose start lies outside the datetime range in UTC, and datetime
    subclasses (which the exact conversion keeps as their class) take the exact conversion.
    """

    __slots__ = ("_starts", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        # (year, month, day, hour) -> (the hour's start, naive; the same in UTC), or () when not uniform.
        self._starts: dict[tuple[int, int, int, int], tuple[datetime, datetime] | tuple[()]] = {}

    def wall_to_utc(self, moment: datetime) -> datetime:
        """A naive `moment` (no offset), read as wall-clock time in the zone with fold=0, in UTC."""
        if moment.__class__ is datetime and moment.tzinfo is None:
            key = (moment.year, moment.month, moment.day, moment.hour)
            hour = self._starts.get(key)
            if hour is None:
                hour = self._hour(key)
            if hour:
                start, start_utc = hour
                return start_utc + (moment - start)
        return moment.replace(tzinfo=self.zone, fold=0).astimezone(UTC)

    def _hour(self, key: tuple[int, int, int, int]) -> tuple[datetime, datetime] | tuple[()]:
        """The hour's start (naive and in UTC) when its offset is uniform, else (); remembered either way."""
        start = datetime(*key)
        end = start.replace(minute=59, second=59, microsecond=999999)
        zone = self.zone
        offsets = {moment.replace(tzinfo=zone, fold=fold).utcoffset() for moment in (start, end) for fold in (0, 1)}
        hour: tuple[datetime, datetime] | tuple[()] = ()
        if len(offsets) == 1:
            # When the start is out of range in UTC (later moments of the hour may not be), the hour stays ().
            with contextlib.suppress(OverflowError):
                hour = (start, start.replace(tzinfo=zone).astimezone(UTC))
        if len(self._starts) >= TIMESTAMP_CACHE_SIZE:
            self._starts.clear()
        self._starts[key] = hour
        return hour


def _end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The instant a consent valid through `day` lapses: the start of the next day in `zone`."""
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)  # "valid through the last representable day": never lapses
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


def _spellings(members: Mapping[str, _E], *, spaced: bool = False) -> dict[str, _E]:
    """Common exact spellings of each member (lower, upper, capitalised, title case; spaced forms).

    Each is kept only if the full rule (`_member`) reads it as that member, so looking a raw value
    up here first is only a shortcut, never a different answer.
    """
    table: dict[str, _E] = {}
    for value, member in members.items():
        forms = {value, value.replace("_", " "), value.replace("_", "-")} if spaced else {value}
        forms |= {variant for form in forms for variant in (form.upper(), form.capitalize(), form.title())}
        for form in forms:
            try:
                if _member(form, members, QuarantineReason.BAD_DECISION, "-", spaced=spaced) is member:
                    table[form] = member
            except _Rejected:
                continue
    return table


def _boolean_spellings() -> dict[str, bool | None]:
    """Common exact spellings of the booleans (and the empty cell), each checked against `_boolean`."""
    table: dict[str, bool | None] = {}
    for word in (*_TRUE, *_FALSE, ""):
        for form in {word, word.upper(), word.capitalize()}:
            table[form] = _boolean(form)
    return table


_DECISION_SPELLINGS = _spellings(_DECISIONS)
_CONSENTED_BY_SPELLINGS = _spellings(_CONSENTED_BY, spaced=True)
_CASE_STATUS_SPELLINGS = _spellings(_CASE_STATUSES)
_BOOLEAN_SPELLINGS = _boolean_spellings()
