"""Parsing and validating one consent-record row (flagsync.core.records), by example and by property."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.core.model import (
    CONTRACT_COLUMNS,
    CaseStatus,
    ConsentedBy,
    ConsentRecord,
    Decision,
    QuarantinedRecord,
    QuarantineReason,
    is_valid_person_id,
)
from flagsync.core.records import column_map, normalize_person_id, parse_record

from .conftest import CONTRACT, NOW, make_row

LONDON = ZoneInfo("Europe/London")
R = QuarantineReason


def parse(**overrides: object) -> object:
    row: dict[str, object] = {name: value for name, value in make_row("r1", "P1").items() if name in CONTRACT}
    row.update(overrides)
    return parse_record(row, now=NOW, zone=LONDON)


def test_valid_row_becomes_a_consent_record() -> None:
    """A well-formed granted row parses into a record with UTC timestamps and the enums."""
    assert parse() == ConsentRecord(
        record_id="r1",
        person_id="P1",
        decision=Decision.GRANTED,
        informed=True,
        consented_by=ConsentedBy.PARENT,
        recorded_at=datetime(2025, 6, 1, 8, 30, tzinfo=UTC),  # naive, British Summer Time
        expires_at=datetime(2027, 1, 1, 0, 0, tzinfo=UTC),  # a date: valid through that day
        case_status=CaseStatus.OPEN,
        consent_version="v2",
        updated_at=datetime(2025, 6, 1, 9, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        ({"record_id": None}, R.MISSING_FIELD, "record_id"),
        ({"record_id": "   "}, R.MISSING_FIELD, "record_id"),
        ({"record_id": "x" * 129}, R.FIELD_TOO_LONG, "record_id"),
        ({"person_id": "P 1"}, R.BAD_PERSON_ID, "person_id"),
        ({"person_id": "P1/../admin"}, R.BAD_PERSON_ID, "person_id"),
        ({"person_id": "P" * 65}, R.BAD_PERSON_ID, "person_id"),
        ({"decision": ""}, R.MISSING_FIELD, "decision"),
        ({"decision": "maybe"}, R.BAD_DECISION, "decision"),
        ({"informed": "perhaps"}, R.BAD_BOOLEAN, "informed"),
        ({"informed": 2}, R.BAD_BOOLEAN, "informed"),
        ({"informed": None}, R.MISSING_FIELD, "informed"),
        ({"consented_by": "neighbour"}, R.BAD_CONSENTED_BY, "consented_by"),
        ({"consented_by": None}, R.MISSING_FIELD, "consented_by"),
        ({"recorded_at": None}, R.MISSING_FIELD, "recorded_at"),
        ({"recorded_at": "yesterday"}, R.BAD_TIMESTAMP, "recorded_at"),
        ({"recorded_at": "2025-02-30T10:00"}, R.BAD_TIMESTAMP, "recorded_at"),
        ({"recorded_at": "2025-06-01X10:00"}, R.BAD_TIMESTAMP, "recorded_at"),
        ({"recorded_at": "2025-06-01"}, R.BAD_TIMESTAMP, "recorded_at"),
        ({"recorded_at": date(2025, 6, 1)}, R.BAD_TIMESTAMP, "recorded_at"),
        ({"recorded_at": 1717228800}, R.BAD_TIMESTAMP, "recorded_at"),
        ({"recorded_at": "0001-01-01T00:00+05:00"}, R.BAD_TIMESTAMP, "recorded_at"),
        ({"recorded_at": (NOW + timedelta(minutes=5, seconds=1)).isoformat()}, R.FUTURE_TIMESTAMP, "recorded_at"),
        ({"expires_at": "soon"}, R.BAD_TIMESTAMP, "expires_at"),
        ({"case_status": None}, R.MISSING_FIELD, "case_status"),
        ({"case_status": "pending"}, R.BAD_CASE_STATUS, "case_status"),
        ({"consent_version": "v" * 65}, R.FIELD_TOO_LONG, "consent_version"),
        ({"updated_at": "last week"}, R.BAD_TIMESTAMP, "updated_at"),
    ],
)
def test_each_broken_rule_quarantines_with_its_reason(overrides: dict[str, object], reason: QuarantineReason, field: str) -> None:
    """A row breaking one rule is quarantined with that rule's reason code and column."""
    item = parse(**overrides)
    assert isinstance(item, QuarantinedRecord)
    assert (item.reason, item.field) == (reason, field)


def test_quarantined_record_keeps_only_well_formed_ids() -> None:
    """A quarantined record keeps a usable record id and a well-formed person id, and drops bad ones."""
    assert parse(decision="maybe") == QuarantinedRecord("r1", "P1", R.BAD_DECISION, "decision")
    assert parse(record_id="x" * 129) == QuarantinedRecord(None, "P1", R.FIELD_TOO_LONG, "record_id")
    assert parse(person_id="P 1") == QuarantinedRecord("r1", None, R.BAD_PERSON_ID, "person_id")


@pytest.mark.parametrize(
    "value",
    [True, False, float("inf"), float("nan"), 1234.0, 12345678901234567890.0, Decimal("12345"), date(2026, 1, 1)],
)
def test_a_person_id_of_another_type_is_quarantined_not_turned_into_text(value: object) -> None:
    """str() of these is a well-formed id ("True", "inf", "2026-01-01") or a wrong one (a float's lost digits)."""
    assert parse(person_id=value) == QuarantinedRecord("r1", None, R.BAD_PERSON_ID, "person_id")
    assert normalize_person_id(value) is None


def test_a_person_id_may_be_text_bytes_a_whole_number_or_a_uuid() -> None:
    """The types a database gives for an id column: their text is the id, exactly."""
    uid = UUID("12345678-1234-5678-1234-567812345678")
    for value, text in ((" P1 ", "P1"), (b"P1", "P1"), (12345, "12345"), (uid, str(uid))):
        item = parse(person_id=value)
        assert isinstance(item, ConsentRecord) and item.person_id == text
        assert normalize_person_id(value) == text


def test_first_failure_wins_in_documented_order() -> None:
    """With several problems the earliest check in the documented order is reported."""
    item = parse(decision="maybe", informed="perhaps", recorded_at="bad", case_status="pending")
    assert isinstance(item, QuarantinedRecord)
    assert item.reason is R.BAD_DECISION
    item = parse(person_id="P 1", decision="maybe")
    assert isinstance(item, QuarantinedRecord)
    assert item.reason is R.BAD_PERSON_ID


def test_duplicate_flag_quarantines_after_record_id_checks() -> None:
    """A duplicate record id is reported as such, keeping the well-formed person id; a too-long id still wins."""
    row = {name: value for name, value in make_row("r1", "P1").items() if name in CONTRACT}
    assert parse_record(row, now=NOW, zone=LONDON, duplicate=True) == QuarantinedRecord(
        "r1", "P1", R.DUPLICATE_RECORD_ID, "record_id"
    )
    row["record_id"] = "x" * 129
    item = parse_record(row, now=NOW, zone=LONDON, duplicate=True)
    assert isinstance(item, QuarantinedRecord)
    assert item.reason is R.FIELD_TOO_LONG


def test_empty_person_id_is_unmatched_but_still_validated() -> None:
    """No person id gives an unmatched record (person_id None); its other fields are still checked."""
    item = parse(person_id="  ")
    assert isinstance(item, ConsentRecord)
    assert item.person_id is None
    assert parse(person_id=None, decision="maybe") == QuarantinedRecord("r1", None, R.BAD_DECISION, "decision")


@pytest.mark.parametrize("decision", ["refused", "withdrawn"])
def test_informed_and_consented_by_are_optional_unless_granted(decision: str) -> None:
    """A refusal or withdrawal needs neither `informed` nor `consented_by`, but bad values are still rejected."""
    item = parse(decision=decision.upper(), informed=None, consented_by="")
    assert isinstance(item, ConsentRecord)
    assert (item.decision, item.informed, item.consented_by) == (Decision(decision), None, None)
    bad = parse(decision=decision, informed="perhaps")
    assert isinstance(bad, QuarantinedRecord)
    assert bad.reason is R.BAD_BOOLEAN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("1", True),
        (" False ", False),
        ("no", False),
        ("0", False),
        (True, True),
        (0, False),
        (1, True),
    ],
)
def test_informed_booleans(value: object, expected: bool) -> None:
    """`informed` accepts true/false/yes/no/1/0 in any case, and database booleans and 0/1 integers."""
    item = parse(informed=value)
    assert isinstance(item, ConsentRecord)
    assert item.informed is expected


@pytest.mark.parametrize("value", ["Young Person", "young-person", "YOUNG_PERSON"])
def test_consented_by_spellings(value: str) -> None:
    """`consented_by` is case-insensitive and takes a space or hyphen for the underscore."""
    item = parse(consented_by=value)
    assert isinstance(item, ConsentRecord)
    assert item.consented_by is ConsentedBy.YOUNG_PERSON


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-10T10:00:00Z", datetime(2025, 1, 10, 10, 0, tzinfo=UTC)),
        ("2025-01-10 10:00", datetime(2025, 1, 10, 10, 0, tzinfo=UTC)),  # naive, GMT
        ("2025-07-10T10:00:00.123456", datetime(2025, 7, 10, 9, 0, 0, 123456, tzinfo=UTC)),  # naive, BST
        ("2025-07-10T10:00:00+02:00", datetime(2025, 7, 10, 8, 0, tzinfo=UTC)),
        ("2025-07-10T10:00-0130", datetime(2025, 7, 10, 11, 30, tzinfo=UTC)),
        (datetime(2025, 7, 10, 10, 0), datetime(2025, 7, 10, 9, 0, tzinfo=UTC)),  # naive database value
        (datetime(2025, 7, 10, 10, 0, tzinfo=UTC), datetime(2025, 7, 10, 10, 0, tzinfo=UTC)),
        ("2025-03-30T01:30", datetime(2025, 3, 30, 1, 30, tzinfo=UTC)),  # in the spring-forward gap: read as GMT
        ("2025-10-26T01:30", datetime(2025, 10, 26, 0, 30, tzinfo=UTC)),  # ambiguous: the earlier (BST) instant
    ],
)
def test_recorded_at_formats_and_zones(value: object, expected: datetime) -> None:
    """Timestamps with an offset keep it, naive ones are wall-clock time in the zone; all come back in UTC."""
    item = parse(recorded_at=value)
    assert isinstance(item, ConsentRecord)
    assert item.recorded_at == expected
    assert item.recorded_at.tzinfo is UTC


def test_recorded_at_up_to_five_minutes_ahead_is_accepted() -> None:
    """Clock skew of up to five minutes is tolerated."""
    item = parse(recorded_at=(NOW + timedelta(minutes=5)).isoformat())
    assert isinstance(item, ConsentRecord)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-30", datetime(2025, 6, 30, 23, 0, tzinfo=UTC)),  # start of 1 July, BST
        ("2025-12-31", datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        (date(2025, 12, 31), datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        ("9999-12-31", datetime.max.replace(tzinfo=UTC)),
        ("2025-06-30T17:00:00+01:00", datetime(2025, 6, 30, 16, 0, tzinfo=UTC)),
        ("", None),
    ],
)
def test_expires_at_date_means_valid_through_that_day(value: object, expected: datetime | None) -> None:
    """A plain expiry date lapses at the start of the next day in the zone; a date-time is taken as is."""
    item = parse(expires_at=value)
    assert isinstance(item, ConsentRecord)
    assert item.expires_at == expected


def test_naive_now_is_a_programming_error() -> None:
    """`now` must be timezone-aware; the error names no value."""
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_record({}, now=datetime(2026, 1, 1), zone=LONDON)


def test_column_map_is_identity_overridden_by_the_mapping() -> None:
    """Every contract column maps to itself unless the (settings-checked) mapping renames it."""
    assert column_map({"decision": "Outcome"})["decision"] == "Outcome"
    assert column_map(None)["record_id"] == "record_id"
    assert sorted(column_map(None)) == sorted(CONTRACT_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Properties

ZONES = st.sampled_from(
    [ZoneInfo("Europe/London"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("UTC")]
)
INTERESTING_TEXT = st.sampled_from(
    [
        "granted",
        "REFUSED",
        "withdrawn",
        "yes",
        "0",
        "parent",
        "young person",
        "open",
        "Closed",
        "P1",
        "2025-03-30T01:30",
        "9999-12-31",
    ]
)
ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=140),
    INTERESTING_TEXT,
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.dates(),
    st.booleans(),
    st.integers(),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(row=st.fixed_dictionaries({}, optional=dict.fromkeys(CONTRACT_COLUMNS, ANY_VALUE)), zone=ZONES)
def test_parse_never_raises_and_keeps_only_safe_ids(row: dict[str, object], zone: ZoneInfo) -> None:
    """Any row content gives a record or a quarantined record; a quarantined one holds only usable ids."""
    item = parse_record(row, now=NOW, zone=zone)
    assert isinstance(item, ConsentRecord | QuarantinedRecord)
    if isinstance(item, QuarantinedRecord):
        assert item.field in CONTRACT_COLUMNS
        assert item.record_id is None or (0 < len(item.record_id) <= 128)
        assert item.person_id is None or is_valid_person_id(item.person_id)
    else:
        assert item.recorded_at <= NOW + timedelta(minutes=5)
        assert item.recorded_at.tzinfo is UTC


PERSON_IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
RECORD_IDS = st.text(st.characters(blacklist_categories=["Cs", "Zs", "Cc", "Zl", "Zp"]), min_size=1, max_size=128)
INSTANTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC))


def _mixed_case(draw: st.DrawFn, word: str) -> str:
    return "".join(ch.upper() if draw(st.booleans()) else ch for ch in word)


@st.composite
def valid_rows(draw: st.DrawFn) -> tuple[dict[str, object], ConsentRecord]:
    """A valid row rendered as text in varied but legal spellings, with the record it must parse to."""
    decision = draw(st.sampled_from(Decision))
    granted = decision is Decision.GRANTED
    informed = draw(st.booleans() if granted else st.none() | st.booleans())
    consented_by = draw(st.sampled_from(ConsentedBy) if granted else st.none() | st.sampled_from(ConsentedBy))
    recorded = draw(INSTANTS).replace(microsecond=0)
    expires = draw(st.none() | INSTANTS.map(lambda moment: moment.replace(microsecond=0)))
    offset = timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60)))
    expected = ConsentRecord(
        record_id=draw(RECORD_IDS),
        person_id=draw(st.none() | PERSON_IDS),
        decision=decision,
        informed=informed,
        consented_by=consented_by,
        recorded_at=recorded,
        expires_at=expires,
        case_status=draw(st.sampled_from(CaseStatus)),
        consent_version=draw(st.none() | st.text(st.characters(whitelist_categories=["L", "N"]), min_size=1, max_size=64)),
        updated_at=None,
    )
    pad = draw(st.sampled_from(["", " ", "\t"]))
    boolean_words = {True: ["true", "yes", "1"], False: ["false", "no", "0"]}
    row: dict[str, object] = {
        "record_id": pad + expected.record_id + pad,
        "person_id": expected.person_id or draw(st.sampled_from(["", None, "  "])),
        "decision": _mixed_case(draw, decision.value),
        "informed": None if informed is None else _mixed_case(draw, draw(st.sampled_from(boolean_words[informed]))),
        "consented_by": None if consented_by is None else _mixed_case(draw, consented_by.value),
        "recorded_at": recorded.astimezone(timezone(offset)).isoformat(),
        "expires_at": None if expires is None else expires.isoformat().replace("+00:00", "Z"),
        "case_status": _mixed_case(draw, expected.case_status.value),
        "consent_version": expected.consent_version,
    }
    return row, expected


@settings(max_examples=200)
@given(case=valid_rows(), zone=ZONES)
def test_valid_rows_round_trip(case: tuple[dict[str, object], ConsentRecord], zone: ZoneInfo) -> None:
    """Every valid row, however it is spelled, parses back to exactly the record it was made from."""
    row, expected = case
    assert parse_record(row, now=NOW, zone=zone) == expected


@settings(max_examples=200)
@given(
    wall=st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2025, 12, 31)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
    zone=ZONES,
)
def test_naive_timestamps_are_wall_clock_time_in_the_zone(wall: datetime, zone: ZoneInfo) -> None:
    """A naive timestamp is read in the zone: the earlier instant when ambiguous, just after the gap when skipped."""
    item = parse_record({**make_row("r1", "P1"), "recorded_at": wall.isoformat()}, now=NOW, zone=zone)
    assert isinstance(item, ConsentRecord)
    local = item.recorded_at.astimezone(zone)
    earlier = wall.replace(tzinfo=zone, fold=0)
    if earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        # the wall time exists: it round-trips, and when ambiguous the earlier of the two is chosen
        assert local.replace(tzinfo=None) == wall
        assert item.recorded_at <= wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    else:
        # the wall time was skipped by a clock change: read with the offset before the change
        assert item.recorded_at == (wall - earlier.utcoffset()).replace(tzinfo=UTC)  # type: ignore[operator]  # utcoffset is set: zone-aware
        assert local.replace(tzinfo=None) > wall
