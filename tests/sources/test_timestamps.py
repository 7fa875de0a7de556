"""The fast timestamp path (fromisoformat first, results cached by text) against the reference rules, by property."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from flagsync.core.model import CaseStatus, ConsentedBy, ConsentRecord, Decision, QuarantinedRecord, QuarantineReason
from flagsync.core.records import TIMESTAMP_CACHE_SIZE, RowParser, parse_record

from .conftest import CONTRACT, NOW, make_row

ZONES = st.sampled_from([ZoneInfo("Europe/London"), ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu"), ZoneInfo("UTC")])

# ---- The reference: the timestamp rule exactly as it was written before the fast path (regex first).

_REF_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_REF_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?(Z|z|[+-]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?)?",
    re.ASCII,
)
_BAD = "BAD"


def reference(value: object, zone: ZoneInfo, *, dates_allowed: bool) -> datetime | str | None:
    """The reference answer: a UTC datetime, None (absent) or _BAD."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, datetime):
            return _ref_utc(value, zone)
        if isinstance(value, date):
            return _ref_end_of_day(value, zone) if dates_allowed else _BAD
        if isinstance(value, str):
            text = value.strip()
            if _REF_DATE.fullmatch(text):
                return _ref_end_of_day(date.fromisoformat(text), zone) if dates_allowed else _BAD
            if _REF_DATE_TIME.fullmatch(text):
                return _ref_utc(datetime.fromisoformat(text), zone)
    except (ValueError, OverflowError):
        pass
    return _BAD


def _ref_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone, fold=0)
    return moment.astimezone(UTC)


def _ref_end_of_day(day: date, zone: ZoneInfo) -> datetime:
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


# ---- Generated timestamp texts: near-misses of the accepted format are the interesting part.

digits = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")
years = st.sampled_from(["0001", "1969", "2025", "2026", "9999", "0000", "12345", "202"])
separators = st.sampled_from(["T", "t", " ", "X", "_", "", "  ", "\u2003", "TT"])
fractions = st.sampled_from(["", ".5", ",5", ".123456", ".1234567", ".", ",", ".12a"])
offsets = st.sampled_from(
    ["", "Z", "z", "+00:00", "-05:30", "+0530", "+05", "+05:30:15", "+05:30:15.25", "+24:00", "-23:59", "+5", "UTC", " Z"]
)
date_parts = st.builds(lambda y, m, d, sep: f"{y}{sep}{m}{sep}{d}", years, digits, digits, st.sampled_from(["-", "", "/"]))
time_parts = st.builds(
    lambda h, m, s, colon, frac, depth: h + (colon + m if depth > 0 else "") + (colon + s + frac if depth > 1 else ""),
    digits,
    digits,
    digits,
    st.sampled_from([":", "", "."]),
    fractions,
    st.integers(min_value=0, max_value=2),
)
paddings = st.sampled_from(["", " ", "\t"])
shaped = st.builds(lambda d, s, t, o, p: f"{p}{d}{s}{t}{o}{p}", date_parts, separators, time_parts, offsets, paddings)
plain_dates = st.one_of(
    st.dates().map(date.isoformat),
    st.builds(lambda y, m, d: f"{y}-{m}-{d}", years, digits, digits),
    st.sampled_from(["2025-W01-1", "2025-001", "\uff12025-06-01", "2025-06-01 ", " 2025-06-01", "2025-6-1"]),
)
texts = st.one_of(
    shaped,
    plain_dates,
    st.from_regex(_REF_DATE_TIME, fullmatch=True),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda dt: dt.isoformat()),
    st.text(max_size=40),
)


def parse_with(parser: RowParser, column: str, value: object) -> object:
    row = {name: value for name, value in make_row("r1", "P1").items() if name in CONTRACT}
    row[column] = value
    return parser.parse(tuple(row.get(name) for name in CONTRACT))


def expected_item(column: str, answer: datetime | str | None) -> tuple[str, object]:
    """What a row with this timestamp answer in `column` becomes: ("ok", value) or ("quarantined", reason)."""
    if answer == _BAD:
        return "quarantined", QuarantineReason.BAD_TIMESTAMP
    if column == "recorded_at":
        if answer is None:
            return "quarantined", QuarantineReason.MISSING_FIELD
        assert isinstance(answer, datetime)
        if answer > NOW + timedelta(minutes=5):
            return "quarantined", QuarantineReason.FUTURE_TIMESTAMP
    return "ok", answer


def actual_item(column: str, item: object) -> tuple[str, object]:
    if isinstance(item, QuarantinedRecord):
        return "quarantined", item.reason
    assert isinstance(item, ConsentRecord)
    return "ok", getattr(item, column)


@settings(max_examples=600, deadline=None)
@given(texts, ZONES, st.sampled_from(["recorded_at", "expires_at", "updated_at"]))
def test_fast_path_agrees_with_the_reference(text: str, zone: ZoneInfo, column: str) -> None:
    """For any text in any timestamp column, the parser accepts, rejects and converts exactly as the reference rule."""
    answer = reference(text, zone, dates_allowed=column == "expires_at")
    parser = RowParser(now=NOW, zone=zone)
    first = actual_item(column, parse_with(parser, column, text))
    again = actual_item(column, parse_with(parser, column, text))  # now answered from the cache
    assert first == expected_item(column, answer)
    assert again == first


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, min_size=1, max_size=30), ZONES)
def test_cache_does_not_mix_columns_or_texts(batch: list[str], zone: ZoneInfo) -> None:
    """One parser reading many texts in date-time and date columns in any order answers each as the reference does."""
    parser = RowParser(now=NOW, zone=zone)
    for text in batch + batch[::-1]:
        for column in ("recorded_at", "expires_at"):
            answer = reference(text, zone, dates_allowed=column == "expires_at")
            assert actual_item(column, parse_with(parser, column, text)) == expected_item(column, answer)


def test_cache_is_bounded_and_still_correct_after_it_is_cleared() -> None:
    """More distinct texts than the cache holds are each still parsed right (the cache forgets, it never answers wrongly)."""
    parser = RowParser(now=NOW, zone=ZoneInfo("UTC"))
    base = datetime(2020, 1, 1, tzinfo=UTC)
    for n in range(TIMESTAMP_CACHE_SIZE + 50):
        moment = base + timedelta(seconds=n)
        item = parse_with(parser, "updated_at", moment.strftime("%Y-%m-%dT%H:%M:%S"))
        assert isinstance(item, ConsentRecord)
        assert item.updated_at == moment


def test_parse_record_and_row_parser_agree_on_driver_values() -> None:
    """Datetime and date values (what drivers return) take the same rules in parse_record and a RowParser."""
    zone = ZoneInfo("Europe/London")
    parser = RowParser(now=NOW, zone=zone)
    for value in (datetime(2025, 3, 30, 1, 30), datetime(2025, 6, 1, 9, 30, tzinfo=UTC), date(2025, 6, 1)):
        for column in ("recorded_at", "expires_at"):
            row = {name: v for name, v in make_row("r1", "P1").items() if name in CONTRACT}
            row[column] = value  # type: ignore[assignment]  # a driver's value, not text
            assert parse_record(row, now=NOW, zone=zone) == parse_with(parser, column, value)


# ---- The enum and boolean columns: the spelling shortcuts against the rule as written before them.


def reference_member(value: str, kind: type[Decision | ConsentedBy | CaseStatus], *, spaced: bool = False) -> object:
    text = value.strip()
    if not text:
        return None
    key = text.lower()
    if spaced:
        key = key.replace(" ", "_").replace("-", "_")
    try:
        return kind(key)
    except ValueError:
        return _BAD


def reference_boolean(value: str) -> object:
    key = value.strip().lower()
    if not key:
        return None
    return True if key in ("true", "yes", "1") else False if key in ("false", "no", "0") else _BAD


def spelled(words: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda word, case, pad: pad + (word.upper() if case == 1 else word.title() if case == 2 else word) + pad,
        st.sampled_from(words),
        st.integers(min_value=0, max_value=3),
        st.sampled_from(["", " ", "\t"]),
    ) | st.text(alphabet="grantedYESnofalsue_- 01", max_size=12)


ENUM_COLUMNS = {
    "decision": (Decision, False, ["granted", "refused", "withdrawn", "grant"]),
    "consented_by": (ConsentedBy, True, ["parent", "carer", "young_person", "young person", "young-person", "other"]),
    "case_status": (CaseStatus, False, ["open", "closed", "opened"]),
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(ENUM_COLUMNS)), st.data())
def test_enum_spellings_agree_with_the_reference(column: str, data: st.DataObject) -> None:
    """Any spelling of a decision, consented_by or case_status value parses as the plain rule reads it."""
    kind, spaced, words = ENUM_COLUMNS[column]
    text = data.draw(spelled(words))
    want = reference_member(text, kind, spaced=spaced)
    row = {name: value for name, value in make_row("r1", "P1").items() if name in CONTRACT}
    row[column] = text
    item = RowParser(now=NOW, zone=ZoneInfo("UTC")).parse(tuple(row.get(name) for name in CONTRACT))
    if want is _BAD:
        assert isinstance(item, QuarantinedRecord) and item.field == column
    elif want is None and column in ("decision", "case_status", "consented_by"):
        assert isinstance(item, QuarantinedRecord) and item.reason is QuarantineReason.MISSING_FIELD
    else:
        assert isinstance(item, ConsentRecord) and getattr(item, column) is want


@settings(max_examples=200, deadline=None)
@given(spelled(["true", "yes", "1", "false", "no", "0", "maybe", ""]))
def test_boolean_spellings_agree_with_the_reference(text: str) -> None:
    """Any spelling of `informed` parses as the plain rule reads it."""
    want = reference_boolean(text)
    row = {name: value for name, value in make_row("r1", "P1", decision="refused").items() if name in CONTRACT}
    row["informed"] = text
    item = RowParser(now=NOW, zone=ZoneInfo("UTC")).parse(tuple(row.get(name) for name in CONTRACT))
    if want is _BAD:
        assert isinstance(item, QuarantinedRecord) and item.reason is QuarantineReason.BAD_BOOLEAN
    else:
        assert isinstance(item, ConsentRecord) and item.informed is want
