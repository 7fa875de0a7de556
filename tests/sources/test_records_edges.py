"""The record contract at its edges: exact length limits, the future tolerance, non-text values, bytes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from flagsync.core import records
from flagsync.core.model import ConsentRecord, QuarantinedRecord, QuarantineReason
from flagsync.core.records import MAX_CONSENT_VERSION_LENGTH, MAX_RECORD_ID_LENGTH, RowParser, normalize_text, parse_record

from .conftest import CONTRACT, NOW, make_row

LONDON = ZoneInfo("Europe/London")
R = QuarantineReason


def parse(**overrides: object) -> object:
    row: dict[str, object] = {name: value for name, value in make_row("r1", "P1").items() if name in CONTRACT}
    row.update(overrides)
    return parse_record(row, now=NOW, zone=LONDON)


def test_a_record_id_of_exactly_the_longest_length_is_accepted() -> None:
    """A record id of MAX_RECORD_ID_LENGTH (128) characters is valid; one more is not."""
    longest = "x" * MAX_RECORD_ID_LENGTH
    assert MAX_RECORD_ID_LENGTH == 128
    record = parse(record_id=longest)
    assert isinstance(record, ConsentRecord)
    assert record.record_id == longest


def test_a_quarantined_record_keeps_a_record_id_of_the_longest_length() -> None:
    """A row quarantined for another field keeps its record id while it is at most 128 characters."""
    item = parse(record_id="x" * MAX_RECORD_ID_LENGTH, decision="maybe")
    assert item == QuarantinedRecord("x" * MAX_RECORD_ID_LENGTH, "P1", R.BAD_DECISION, "decision")


def test_a_quarantined_record_drops_an_over_long_record_id() -> None:
    """An over-long record id is not kept (it is no valid id to report), the person id still is."""
    item = parse(record_id="x" * (MAX_RECORD_ID_LENGTH + 1))
    assert item == QuarantinedRecord(None, "P1", R.FIELD_TOO_LONG, "record_id")


def test_a_consent_version_of_exactly_the_longest_length_is_accepted() -> None:
    """A consent version of MAX_CONSENT_VERSION_LENGTH (64) characters is valid; 65 is FIELD_TOO_LONG."""
    assert MAX_CONSENT_VERSION_LENGTH == 64
    record = parse(consent_version="v" * 64)
    assert isinstance(record, ConsentRecord)
    assert record.consent_version == "v" * 64
    assert parse(consent_version="v" * 65) == QuarantinedRecord("r1", "P1", R.FIELD_TOO_LONG, "consent_version")


def test_recorded_at_within_the_future_tolerance_is_accepted() -> None:
    """A recorded_at up to five minutes ahead of now (clock skew) is valid, at the limit included."""
    for ahead in (timedelta(minutes=4), timedelta(minutes=5)):
        record = parse(recorded_at=(NOW + ahead).isoformat())
        assert isinstance(record, ConsentRecord)
        assert record.recorded_at == NOW + ahead


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("decision", R.BAD_DECISION),
        ("informed", R.BAD_BOOLEAN),
        ("consented_by", R.BAD_CONSENTED_BY),
        ("recorded_at", R.BAD_TIMESTAMP),
        ("expires_at", R.BAD_TIMESTAMP),
        ("case_status", R.BAD_CASE_STATUS),
        ("updated_at", R.BAD_TIMESTAMP),
    ],
)
def test_a_structured_value_is_quarantined_never_a_crash(column: str, reason: QuarantineReason) -> None:
    """A list or dict (a JSON column, say) where a word or a timestamp belongs is quarantined with the column's reason."""
    for value in (["granted"], {"decision": "granted"}):
        assert parse(**{column: value}) == QuarantinedRecord("r1", "P1", reason, column)


def test_normalize_text_decodes_bytes_as_utf8_replacing_what_is_not() -> None:
    """Bytes are read as UTF-8, an undecodable byte becomes U+FFFD, and the text is stripped."""
    assert normalize_text(b" caf\xc3\xa9 \xff ") == "caf\u00e9 \ufffd"


def test_normalize_text_of_other_values_is_their_text() -> None:
    """An integer or other value is compared as its text; blank is None."""
    assert normalize_text(1001) == "1001"
    assert normalize_text(" \t") is None
    assert normalize_text(b"   ") is None


def test_a_parser_refuses_a_naive_now() -> None:
    """`now` must be timezone-aware: a naive one is refused, saying so."""
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        RowParser(now=NOW.replace(tzinfo=None), zone=LONDON)


def test_parse_record_works_when_no_parser_was_made_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first parse of a process (no parser remembered yet) parses like any other."""
    monkeypatch.setattr(records, "_last_parser", None)
    assert isinstance(parse(), ConsentRecord)
    assert records._last_parser is not None
    assert records._last_parser.now == NOW


def test_a_parser_accepts_recorded_at_up_to_the_tolerance_ahead_and_no_further() -> None:
    """RowParser's own future limit: now + 5 minutes is valid, a second past it is FUTURE_TIMESTAMP."""
    parser = RowParser(now=NOW, zone=LONDON)
    row = {name: value for name, value in make_row("r1", "P1").items() if name in CONTRACT}
    at_limit = [*row.values()]
    at_limit[CONTRACT.index("recorded_at")] = (NOW + timedelta(minutes=5)).isoformat()
    assert isinstance(parser.parse(at_limit), ConsentRecord)
    past = [*row.values()]
    past[CONTRACT.index("recorded_at")] = (NOW + timedelta(minutes=5, seconds=1)).isoformat()
    assert parser.parse(past) == QuarantinedRecord("r1", "P1", R.FUTURE_TIMESTAMP, "recorded_at")


def test_an_expiry_date_lapses_at_midnight_in_the_source_zone_in_summer_too() -> None:
    """expires_at as a date is valid through that day in the source's zone: in British Summer Time, until 23:00 UTC."""
    record = parse(expires_at="2026-07-01")
    assert isinstance(record, ConsentRecord)
    assert record.expires_at == datetime(2026, 7, 1, 23, 0, tzinfo=UTC)
    assert record.expires_at.tzinfo is UTC


def test_every_parsed_timestamp_is_in_datetime_utc() -> None:
    """recorded_at, expires_at and updated_at come out in datetime.UTC itself, whatever zone they were written in."""
    record = parse(recorded_at="2025-06-01T09:30:00+02:00", expires_at="2026-07-01", updated_at="2025-06-01T10:00:00")
    assert isinstance(record, ConsentRecord)
    assert record.expires_at is not None
    assert record.updated_at is not None
    assert (record.recorded_at.tzinfo, record.expires_at.tzinfo, record.updated_at.tzinfo) == (UTC, UTC, UTC)
    assert all(moment.tzinfo is UTC for moment in (record.recorded_at, record.expires_at, record.updated_at))


@pytest.mark.parametrize("column", ["recorded_at", "expires_at", "updated_at"])
def test_an_unreadable_timestamp_names_its_own_column(column: str) -> None:
    """A bad timestamp is quarantined as BAD_TIMESTAMP naming the column it was in, seen for the first time or again."""
    assert parse(**{column: "yesterday"}) == QuarantinedRecord("r1", "P1", R.BAD_TIMESTAMP, column)
    assert parse(**{column: "yesterday"}) == QuarantinedRecord("r1", "P1", R.BAD_TIMESTAMP, column)


def test_an_ambiguous_naive_time_is_the_earlier_instant_whatever_its_fold() -> None:
    """01:30 on the night clocks go back is read as the first 01:30 (BST), even from a datetime marked fold=1."""
    first = parse(recorded_at=datetime(2025, 10, 26, 1, 30))
    marked = parse(recorded_at=datetime(2025, 10, 26, 1, 30, fold=1))
    assert isinstance(first, ConsentRecord)
    assert isinstance(marked, ConsentRecord)
    assert first.recorded_at == marked.recorded_at == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", [b"yes", Decimal("1"), 1.0, 2])
def test_informed_is_only_text_a_boolean_or_the_integers_0_and_1(value: object) -> None:
    """Bytes, decimals, floats and other integers are not read as a yes or a no: BAD_BOOLEAN."""
    assert parse(informed=value) == QuarantinedRecord("r1", "P1", R.BAD_BOOLEAN, "informed")


def test_an_expiry_given_as_a_date_object_lapses_at_midnight_in_the_source_zone() -> None:
    """A DATE column's value (a date object) is valid through that day in the source zone: 23:00 UTC in summer."""
    record = parse(expires_at=date(2026, 7, 1))
    assert isinstance(record, ConsentRecord)
    assert record.expires_at == datetime(2026, 7, 1, 23, 0, tzinfo=UTC)
    assert record.expires_at.tzinfo is UTC


def test_a_plain_date_where_a_moment_is_needed_is_a_bad_timestamp_of_that_column() -> None:
    """recorded_at and updated_at need a time: a plain date there is BAD_TIMESTAMP naming the column."""
    for column in ("recorded_at", "updated_at"):
        assert parse(**{column: "2025-06-01"}) == QuarantinedRecord("r1", "P1", R.BAD_TIMESTAMP, column)
        assert parse(**{column: date(2025, 6, 1)}) == QuarantinedRecord("r1", "P1", R.BAD_TIMESTAMP, column)
