"""The fast timestamp path (shapes instead of the pattern, naive times by the hour) against the plain rule.

The oracle below is the timestamp rule as written before the fast path: the pattern on every text,
then ``fromisoformat``, then ``replace(tzinfo=zone, fold=0).astimezone(UTC)`` for a naive time.
Every answer of a `RowParser` must be the oracle's: the same UTC datetime (class, tzinfo and fold
too) or the same rejection.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flagsync.core import records
from flagsync.core.model import (
    PERSON_ID_PATTERN,
    PLAIN_PERSON_ID_LENGTH,
    ConsentRecord,
    QuarantinedRecord,
    QuarantineReason,
    is_valid_person_id,
)
from flagsync.core.records import TIMESTAMP_CACHE_SIZE, RowParser, parse_record

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FAR_NOW = datetime(9999, 12, 31, 12, 0, tzinfo=UTC)  # so that no generated recorded_at is in the future

LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # half-hour DST: +10:30 in winter, +11:00 in summer
DUBLIN = ZoneInfo("Europe/Dublin")  # Dublin Mean Time, -0:25:21, until 1916; sub-hour transitions
ZONES = [LONDON, LORD_HOWE, DUBLIN, ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu"), ZoneInfo("UTC")]

# ---- The oracle: the rule exactly as it was written before the fast path.

_ORACLE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_ORACLE_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?(Z|z|[+-]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?)?",
    re.ASCII,
)
BAD = "BAD"


def oracle(value: object, zone: ZoneInfo, *, dates_allowed: bool) -> datetime | str | None:  # noqa: PLR0911 - the rule as it was
    """The plain rule's answer for one timestamp value: a UTC datetime, None (absent) or BAD."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if len(text) == 10 and _ORACLE_DATE.fullmatch(text):
                return _oracle_end_of_day(date.fromisoformat(text), zone) if dates_allowed else BAD
            moment = datetime.fromisoformat(text)
            if _ORACLE_DATE_TIME.fullmatch(text):
                return oracle_utc(moment, zone)
        elif isinstance(value, datetime):
            return oracle_utc(value, zone)
        elif isinstance(value, date) and dates_allowed:
            return _oracle_end_of_day(value, zone)
    except (ValueError, OverflowError):
        pass
    return BAD


def oracle_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone, fold=0)
    return moment.astimezone(UTC)


def _oracle_end_of_day(day: date, zone: ZoneInfo) -> datetime:
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


def exactly(answer: object) -> object:
    """An answer with everything that could tell two equal datetimes apart: class, tzinfo, fold."""
    if isinstance(answer, datetime):
        return answer, answer.__class__, answer.tzinfo, answer.fold
    return answer


def answer_of(parser: RowParser, value: object, column: str) -> object:
    """The parser's answer for `value` in `column` of an otherwise valid row: a datetime, None or BAD."""
    values: list[object] = ["r1", "P1", "refused", "no", None, "2025-06-01T09:30:00Z", None, "open", None, None]
    index = {"recorded_at": 5, "expires_at": 6, "updated_at": 9}[column]
    values[index] = value
    item = parser.parse(values)
    if isinstance(item, QuarantinedRecord):
        if item.reason is QuarantineReason.MISSING_FIELD and column == "recorded_at":
            return None
        assert item.reason is QuarantineReason.BAD_TIMESTAMP, item
        assert item.field == column
        return BAD
    assert isinstance(item, ConsentRecord)
    return getattr(item, column)


# ---- Generated texts: the accepted shapes and their near misses.

_DIGITS = "0123456789"
years = st.sampled_from(
    ["0001", "0002", "1880", "1900", "1916", "1969", "2025", "2026", "2038", "9998", "9999", "0000", "12345", "202"]
)
two = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")
months = st.sampled_from(["01", "03", "04", "05", "10", "12", "00", "13", "1"])
days = st.sampled_from(["01", "04", "05", "21", "25", "29", "31", "00", "32"])
separators = st.sampled_from(["T", "t", " ", "X", "_", "", "  ", "TT", "\u2003", "T\u0660"])
fractions = st.one_of(
    st.just(""),
    st.builds(lambda mark, n: mark + "".join(str((n * 7 + i) % 10) for i in range(n)), st.sampled_from(".,"), st.integers(1, 12)),
    st.sampled_from([".", ",", ".12a", "..5", ".\u0665", ".5,5"]),
)
offsets = st.sampled_from(
    [
        "",
        "Z",
        "z",
        "+00:00",
        "-00:00",
        "+01:00",
        "-05:30",
        "+10:30",
        "+0530",
        "+05",
        "+05:30:15",
        "+05:30:15.25",
        "+24:00",
        "-23:59",
        "+5",
        "+05:3",
        "UTC",
        " Z",
        "ZZ",
        "+\u0660\u0660:00",
        "+00:00Z",
    ]
)
times = st.builds(
    lambda h, m, s, colon, depth: h + (colon + m if depth > 0 else "") + (colon + s if depth > 1 else ""),
    st.sampled_from(["00", "01", "02", "09", "12", "23", "24", "1"]) | two,
    two,
    st.sampled_from(["00", "15", "30", "59", "60", "5"]),
    st.sampled_from([":", ":", ":", "", "."]),
    st.sampled_from([0, 1, 2, 2, 2]),
)
paddings = st.sampled_from(["", "", " ", "\t", "\n"])
shaped = st.builds(
    lambda y, m, d, dash, sep, t, frac, off, pad: f"{pad}{y}{dash}{m}{dash}{d}{sep}{t}{frac}{off}{pad}",
    years,
    months,
    days,
    st.sampled_from(["-", "-", "-", "", "/"]),
    separators,
    times,
    fractions,
    offsets,
    paddings,
)
plain_dates = st.one_of(
    st.dates().map(date.isoformat),
    st.builds(lambda y, m, d: f"{y}-{m}-{d}", years, months, days),
    st.sampled_from(["2025-W01-1", "2025-W01", "2025-001", "20250601", "\uff12025-06-01", "2025-0\u0666-01", "2025-6-1"]),
)
non_ascii_digits = st.builds(
    lambda text, at, digit: text[:at] + digit + text[at + 1 :] if text[at : at + 1].isdigit() else text,
    st.sampled_from(["2025-06-01T09:30:00", "2025-06-01T09:30:00.123456+01:00", "2025-06-01"]),
    st.integers(min_value=0, max_value=31),
    st.sampled_from(["\u0660", "\u0665", "\uff15", "\u0e55", "\U0001d7d3"]),
)
oddities = st.sampled_from(
    [
        "20261124T200000",
        "2026-11-24T20",
        "2026-11-24T2000",
        "2026-11-24T20:00:00+0100",
        "2026-W48-2T20:00",
        "2026-11-24T20:00\ud800",
        "2026-11-24\ud800",
        "\ud8002026-11-24",
        "2026-11-24T20:00:00.",
        "2026-11-24 20:00:00,5Z",
        "2026-11-24T20:00:00+01:00:00",
    ]
)
texts = st.one_of(
    shaped,
    plain_dates,
    non_ascii_digits,
    oddities,
    st.from_regex(_ORACLE_DATE_TIME, fullmatch=True),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda moment: moment.isoformat()),
    st.datetimes().map(lambda moment: moment.isoformat(sep=" ", timespec="microseconds")),
    st.text(max_size=40),
)


@settings(max_examples=800, deadline=None)
@given(texts, st.sampled_from(ZONES), st.sampled_from(["recorded_at", "expires_at", "updated_at"]))
@example("2026-03-29T01:30:00", LONDON, "updated_at")
@example("2026-10-25 01:30:00", LONDON, "updated_at")
@example("2026-04-05t01:45:00.5", LORD_HOWE, "updated_at")
@example("1900-01-01T12:00:00", DUBLIN, "updated_at")
@example("0001-01-01T00:10:00", DUBLIN, "updated_at")  # an hour whose start is out of range in UTC, its moment is not
@example("0001-01-01T00:30:00", LONDON, "updated_at")
@example("9999-12-31T23:59:59.999999", DUBLIN, "updated_at")
@example("9999-12-31T23:59:59.999999", LORD_HOWE, "updated_at")
@example("9999-12-31", DUBLIN, "expires_at")
@example("2025-06-01T09:30:00+\u0660\u0660:00", LONDON, "updated_at")
def test_every_text_gets_the_oracles_answer(text: str, zone: ZoneInfo, column: str) -> None:
    """Any text in any timestamp column: accepted, rejected and converted exactly as the plain rule does, cached or not."""
    want = exactly(oracle(text, zone, dates_allowed=column == "expires_at"))
    parser = RowParser(now=FAR_NOW, zone=zone)
    assert exactly(answer_of(parser, text, column)) == want
    assert exactly(answer_of(parser, text, column)) == want  # from the text cache
    assert exactly(answer_of(parser, " " + text, column)) == want  # another text of the same hour, if any


def _near(transition: datetime) -> st.SearchStrategy[datetime]:
    """Naive wall-clock times within three hours of `transition`."""
    return st.integers(min_value=-3 * 3_600_000_000, max_value=3 * 3_600_000_000).map(
        lambda us: transition + timedelta(microseconds=us)
    )


#: Wall-clock times of transitions: London's spring and autumn changes, Lord Howe's half-hour ones,
#: Dublin's end of Dublin Mean Time (-0:25:21) and its first summer time.
TRANSITIONS = [
    (LONDON, datetime(2026, 3, 29, 1, 0)),
    (LONDON, datetime(2026, 10, 25, 2, 0)),
    (LONDON, datetime(1847, 12, 1, 0, 0)),
    (LORD_HOWE, datetime(2026, 4, 5, 2, 0)),
    (LORD_HOWE, datetime(2026, 10, 4, 2, 0)),
    (LORD_HOWE, datetime(1981, 3, 1, 0, 0)),
    (DUBLIN, datetime(1916, 5, 21, 2, 0)),
    (DUBLIN, datetime(1916, 10, 1, 2, 0)),
    (DUBLIN, datetime(1880, 8, 2, 0, 0)),
    (ZoneInfo("America/St_Johns"), datetime(2026, 3, 8, 2, 0)),
]


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(TRANSITIONS).flatmap(lambda pair: st.tuples(st.just(pair[0]), _near(pair[1]))), st.sampled_from([0, 1]))
def test_naive_times_near_transitions_get_the_oracles_instant(case: tuple[ZoneInfo, datetime], fold: int) -> None:
    """Near a change of offset (gaps, folds, half hours, seconds-odd offsets) a naive time is read as the plain rule reads it."""
    zone, moment = case
    parser = RowParser(now=FAR_NOW, zone=zone)
    want = exactly(oracle(moment, zone, dates_allowed=False))
    for separator in "T ":
        assert exactly(answer_of(parser, moment.isoformat(sep=separator), "updated_at")) == want
    assert exactly(answer_of(parser, moment.replace(fold=fold), "updated_at")) == want
    # the whole hour around it, from a parser that has already worked that hour out
    for minutes in (0, 29, 30, 31, 59):
        other = moment.replace(minute=minutes)
        assert exactly(answer_of(parser, other.isoformat(), "updated_at")) == exactly(oracle(other, zone, dates_allowed=False))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)), st.sampled_from(ZONES))
def test_any_naive_time_gets_the_oracles_instant(moment: datetime, zone: ZoneInfo) -> None:
    """Any naive datetime, as text and as a driver's value, to the first and last representable years."""
    parser = RowParser(now=FAR_NOW, zone=zone)
    want = exactly(oracle(moment, zone, dates_allowed=False))
    assert exactly(answer_of(parser, moment.isoformat(timespec="microseconds"), "updated_at")) == want
    assert exactly(answer_of(parser, moment, "updated_at")) == want


# ---- Table tests: the edges of daylight saving, by hand.

DST_EDGES = [
    # London, spring: 01:00-02:00 does not exist; read with the offset before the change (GMT).
    (LONDON, "2026-03-29T00:59:59.999999", "2026-03-29T00:59:59.999999+00:00"),
    (LONDON, "2026-03-29T01:00:00", "2026-03-29T01:00:00+00:00"),
    (LONDON, "2026-03-29T01:30:00", "2026-03-29T01:30:00+00:00"),
    (LONDON, "2026-03-29T02:00:00", "2026-03-29T01:00:00+00:00"),
    # London, autumn: 01:00-02:00 happens twice; the earlier instant (BST).
    (LONDON, "2026-10-25T00:59:59", "2026-10-24T23:59:59+00:00"),
    (LONDON, "2026-10-25T01:30:00", "2026-10-25T00:30:00+00:00"),
    (LONDON, "2026-10-25T02:00:00", "2026-10-25T02:00:00+00:00"),
    # Lord Howe, autumn: 01:30-02:00 happens twice (+11:00, then +10:30); the earlier instant.
    (LORD_HOWE, "2026-04-05T01:29:59.999999", "2026-04-04T14:29:59.999999+00:00"),
    (LORD_HOWE, "2026-04-05T01:45:00", "2026-04-04T14:45:00+00:00"),
    (LORD_HOWE, "2026-04-05T02:00:00", "2026-04-04T15:30:00+00:00"),
    # Lord Howe, spring: 02:00-02:30 does not exist; read at +10:30.
    (LORD_HOWE, "2026-10-04T01:59:59", "2026-10-03T15:29:59+00:00"),
    (LORD_HOWE, "2026-10-04T02:15:00", "2026-10-03T15:45:00+00:00"),
    (LORD_HOWE, "2026-10-04T02:30:00", "2026-10-03T15:30:00+00:00"),
    # Dublin Mean Time (-0:25:21) and its end in 1916, when the clocks went forward at 02:00.
    (DUBLIN, "1900-01-01T12:00:00", "1900-01-01T12:25:21+00:00"),
    (DUBLIN, "1916-05-21T01:59:59", "1916-05-21T02:25:20+00:00"),
    (DUBLIN, "1916-05-21T02:30:00", "1916-05-21T02:55:21+00:00"),
    (DUBLIN, "1916-05-21T03:00:00", "1916-05-21T02:25:21+00:00"),
    # Its first autumn: Irish summer time (+0:34:39) back to GMT at 03:00; the earlier instant.
    (DUBLIN, "1916-10-01T02:30:00", "1916-10-01T01:55:21+00:00"),
]


@pytest.mark.parametrize(("zone", "text", "utc"), DST_EDGES)
def test_dst_edges(zone: ZoneInfo, text: str, utc: str) -> None:
    """Gaps read with the offset before them, folds as the earlier instant, the same from a warm parser."""
    want = datetime.fromisoformat(utc)
    cold = RowParser(now=FAR_NOW, zone=zone)
    assert answer_of(cold, text, "updated_at") == want
    warm = RowParser(now=FAR_NOW, zone=zone)
    start = datetime.fromisoformat(text).replace(minute=0, second=0, microsecond=0)
    for minutes in range(0, 60, 7):  # the hour worked out (and remembered) by other texts first
        answer_of(warm, (start + timedelta(minutes=minutes)).isoformat(), "updated_at")
    assert answer_of(warm, text, "updated_at") == want
    assert answer_of(warm, datetime.fromisoformat(text), "updated_at") == want


# ---- The hour memory.


def test_a_uniform_hour_is_remembered_by_its_start() -> None:
    """An hour with one offset throughout is kept as its start, naive and in UTC."""
    hours = records._Hours(LONDON)
    assert hours.wall_to_utc(datetime(2026, 7, 1, 10, 15, 30, 5)) == datetime(2026, 7, 1, 9, 15, 30, 5, tzinfo=UTC)
    assert hours._starts == {(2026, 7, 1, 10): (datetime(2026, 7, 1, 10), datetime(2026, 7, 1, 9, tzinfo=UTC))}
    assert hours.wall_to_utc(datetime(2026, 7, 1, 10, 59, 59, 999999)) == datetime(2026, 7, 1, 9, 59, 59, 999999, tzinfo=UTC)
    assert len(hours._starts) == 1


@pytest.mark.parametrize(
    ("zone", "hour"),
    [
        (LONDON, (2026, 3, 29, 1)),  # the gap itself
        (LONDON, (2026, 10, 25, 1)),  # the fold: fold=0 and fold=1 differ throughout
        (LORD_HOWE, (2026, 4, 5, 1)),  # the change at half past
        (DUBLIN, (1916, 10, 1, 2)),  # folds back at 03:00 IST to 02:25:21 GMT: 02:25:21-03:00 happens twice
    ],
)
def test_an_hour_with_a_change_of_offset_is_not_remembered_as_uniform(zone: ZoneInfo, hour: tuple[int, int, int, int]) -> None:
    """An hour the offset changes in (or with two readings) is marked (), and its moments take the exact conversion."""
    hours = records._Hours(zone)
    for minutes in (0, 20, 40, 59):
        moment = datetime(*hour, minutes)
        assert exactly(hours.wall_to_utc(moment)) == exactly(oracle_utc(moment, zone))
    assert hours._starts == {hour: ()}


def test_the_hours_next_to_a_change_are_uniform() -> None:
    """The hours either side of London's spring gap are each uniform, with their own offset."""
    hours = records._Hours(LONDON)
    hours.wall_to_utc(datetime(2026, 3, 29, 0, 30))
    hours.wall_to_utc(datetime(2026, 3, 29, 2, 30))
    assert hours._starts[2026, 3, 29, 0] == (datetime(2026, 3, 29, 0), datetime(2026, 3, 29, 0, tzinfo=UTC))
    assert hours._starts[2026, 3, 29, 2] == (datetime(2026, 3, 29, 2), datetime(2026, 3, 29, 1, tzinfo=UTC))


def test_an_hour_whose_start_is_out_of_range_in_utc_takes_the_exact_conversion() -> None:
    """East of UTC, the first hour of year 1 starts before year 1 in UTC; its later moments may not."""
    hours = records._Hours(ZoneInfo("Asia/Kathmandu"))
    with pytest.raises(OverflowError):
        hours.wall_to_utc(datetime(1, 1, 1, 0, 30))  # +5:41:16 (LMT): before year 1 in UTC, as the plain rule finds too
    assert hours._starts == {(1, 1, 1, 0): ()}
    west = records._Hours(DUBLIN)
    assert west.wall_to_utc(datetime(9999, 12, 31, 23, 30)) == oracle_utc(datetime(9999, 12, 31, 23, 30), DUBLIN)
    east = records._Hours(ZoneInfo("Europe/Amsterdam"))  # LMT +0:19:32 in year 1
    assert east.wall_to_utc(datetime(1, 1, 1, 0, 30)) == datetime(1, 1, 1, 0, 10, 28, tzinfo=UTC)
    assert east._starts == {(1, 1, 1, 0): ()}


def test_the_hour_memory_is_bounded() -> None:
    """More distinct hours than the memory holds: it is cleared when full, and every answer stays right."""
    hours = records._Hours(LONDON)
    start = datetime(2020, 1, 1)
    for n in range(TIMESTAMP_CACHE_SIZE + 5):
        moment = start + timedelta(hours=n, minutes=17)
        assert exactly(hours.wall_to_utc(moment)) == exactly(oracle_utc(moment, LONDON))
        assert len(hours._starts) <= TIMESTAMP_CACHE_SIZE
    assert len(hours._starts) == 5


def test_a_datetime_subclass_keeps_its_class_as_the_plain_rule_does() -> None:
    """A driver's datetime subclass is converted exactly (its class kept), not from the hour memory."""

    class Stamp(datetime):
        pass

    moment = Stamp(2026, 7, 1, 10, 15)
    hours = records._Hours(LONDON)
    assert exactly(hours.wall_to_utc(moment)) == exactly(oracle_utc(moment, LONDON))
    assert hours._starts == {}
    parser = RowParser(now=FAR_NOW, zone=LONDON)
    assert exactly(answer_of(parser, moment, "updated_at")) == exactly(oracle_utc(moment, LONDON))
    aware = Stamp(2026, 7, 1, 10, 15, tzinfo=UTC)
    assert exactly(answer_of(parser, aware, "updated_at")) == exactly(oracle_utc(aware, LONDON))


def test_a_datetime_whose_tzinfo_gives_no_offset_is_read_as_naive() -> None:
    """A tzinfo whose utcoffset is None makes a naive datetime: wall-clock time in the zone, as the plain rule reads it."""

    class Floating(zoneinfo.ZoneInfo):
        def utcoffset(self, dt: datetime | None) -> timedelta | None:
            return None

    moment = datetime(2026, 7, 1, 10, 15, tzinfo=Floating("UTC"))
    parser = RowParser(now=FAR_NOW, zone=LONDON)
    assert exactly(answer_of(parser, moment, "updated_at")) == exactly(oracle_utc(moment, LONDON))
    assert answer_of(parser, moment, "updated_at") == datetime(2026, 7, 1, 9, 15, tzinfo=UTC)


def test_no_installed_zone_has_two_transitions_within_hours_of_each_other() -> None:
    """What makes checking an hour's two ends enough: no zone changes offset twice within one hour (or near it).

    Reads the transitions with the pure-Python zoneinfo (a private module, hence the skip).
    """
    pure = getattr(importlib.import_module("zoneinfo._zoneinfo"), "ZoneInfo", None)
    if pure is None or not hasattr(pure.no_cache("Europe/London"), "_trans_utc"):
        pytest.skip("the pure-Python zoneinfo's transition list is not available")
    closest = min(
        (later - earlier, key)
        for key in zoneinfo.available_timezones()
        for earlier, later in zip(pure.no_cache(key)._trans_utc, pure.no_cache(key)._trans_utc[1:], strict=False)
    )
    assert closest[0] > 24 * 3600, closest


# ---- The shapes.


def test_every_known_shape_is_matched_by_the_pattern() -> None:
    """Each shortcut shape is a text the pattern accepts (and so is every text of that shape)."""
    assert records._DATE_TIME_SHAPES
    for shape in records._DATE_TIME_SHAPES:
        assert records._DATE_TIME.fullmatch(shape.decode())
        assert _ORACLE_DATE_TIME.fullmatch(shape.decode())


def test_the_common_shapes_are_known() -> None:
    """The shapes sources write (what the benchmarks parse) take the shortcut; the set is all of them, no more."""
    known = records._DATE_TIME_SHAPES
    for text in ["2025-06-01T09:30:00", "2025-06-01T09:30:00+00:00", "2025-06-01T09:30:00.000001+00:00", "2025-06-01 09:30:00Z"]:
        assert text.encode().translate(records._DIGITS_AS_NINES) in known
    assert b"9999-99-99t99:99:99,999999999-99:99" in known
    assert b"9999-99-99 99:99:99.9z" in known
    assert len(known) == 3 * 19 * 5  # separators x (no fraction, 1-9 digits after . or ,) x offsets


@settings(max_examples=500, deadline=None)
@given(texts)
def test_a_text_of_a_known_shape_matches_the_pattern(text: str) -> None:
    """The shortcut never accepts what the pattern refuses, and the date shape is exactly the date pattern."""
    shape = text.encode("utf-8", "surrogatepass").translate(records._DIGITS_AS_NINES)  # as RowParser, but any text
    if shape in records._DATE_TIME_SHAPES:
        assert _ORACLE_DATE_TIME.fullmatch(text)
    assert (shape == records._PLAIN_DATE_SHAPE) == bool(len(text) == 10 and _ORACLE_DATE.fullmatch(text))


def test_digits_become_nines_and_nothing_else_does() -> None:
    """The translation table maps exactly the ten ASCII digits to 9."""
    table = records._DIGITS_AS_NINES
    assert [byte for byte in range(256) if table[byte] != byte] == [ord(digit) for digit in "012345678"]
    assert {table[ord(digit)] for digit in _DIGITS} == {ord("9")}


# ---- The person id shortcut and parse_record's row reading.


def test_the_person_id_pattern_is_the_one_the_shortcut_was_written_for() -> None:
    """A change to One's id pattern must revisit the plain-id shortcut in is_valid_person_id and RowParser.parse."""
    assert PERSON_ID_PATTERN.pattern == r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    assert records._PLAIN_PERSON_ID_LENGTH == PLAIN_PERSON_ID_LENGTH == 64


PERSON_ID_TEXTS = st.text(alphabet=st.sampled_from("aZ09_-é\u0665\uff21 \t\n") | st.characters(), max_size=70) | st.text(
    alphabet="abcXYZ0189", min_size=60, max_size=70
)


@settings(max_examples=500, deadline=None)
@given(PERSON_ID_TEXTS)
def test_is_valid_person_id_judges_as_the_pattern_does(text: str) -> None:
    """The plain-id shortcut accepts only what the pattern accepts, and the pattern decides everything else."""
    assert is_valid_person_id(text) is (PERSON_ID_PATTERN.fullmatch(text) is not None)


@settings(max_examples=300, deadline=None)
@given(PERSON_ID_TEXTS)
def test_person_ids_are_judged_as_the_pattern_judges_them(text: str) -> None:
    """Letters, digits (ASCII or not), _ and -, around the longest length: the row's verdict is the pattern's."""
    item = RowParser(now=NOW, zone=LONDON).parse(
        ["r1", text, "refused", None, None, "2025-06-01T09:30:00Z", None, "open", None, None]
    )
    stripped = text.strip()
    if not stripped:
        assert isinstance(item, ConsentRecord) and item.person_id is None
    elif PERSON_ID_PATTERN.fullmatch(stripped):
        assert isinstance(item, ConsentRecord) and item.person_id == stripped
    else:
        assert isinstance(item, QuarantinedRecord) and item.reason is QuarantineReason.BAD_PERSON_ID


def test_a_64_character_id_is_well_formed_and_a_65_character_one_is_not() -> None:
    parser = RowParser(now=NOW, zone=LONDON)
    for length, ok in ((64, True), (65, False)):
        item = parser.parse(["r1", "P" * length, "refused", None, None, "2025-06-01T09:30:00Z", None, "open", None, None])
        assert isinstance(item, ConsentRecord) is ok


def _row() -> dict[str, object]:
    return {
        "record_id": "r1",
        "person_id": "P1",
        "decision": "granted",
        "informed": "yes",
        "consented_by": "parent",
        "recorded_at": "2025-06-01T09:30:00",
        "expires_at": "2030-12-31",
        "case_status": "open",
        "consent_version": "v2",
        "updated_at": "2025-06-01T09:30:00.5+01:00",
    }


def test_parse_record_reads_plain_dicts_other_mappings_and_rows_without_optional_columns() -> None:
    """A full dict, a dict lacking optional columns, a dict subclass (left untouched) and any Mapping: the same record."""
    full = parse_record(_row(), now=NOW, zone=LONDON)
    assert isinstance(full, ConsentRecord)
    assert full.updated_at == datetime(2025, 6, 1, 8, 30, 0, 500000, tzinfo=UTC)
    lacking = {name: value for name, value in _row().items() if name not in records.OPTIONAL_COLUMNS}
    bare = parse_record(lacking, now=NOW, zone=LONDON)
    assert bare == dataclasses_replace(full, expires_at=None, consent_version=None, updated_at=None)

    class Defaulting(dict[str, object]):
        def __missing__(self, key: str) -> object:
            return "granted"

    defaulting = Defaulting(lacking)
    assert parse_record(defaulting, now=NOW, zone=LONDON) == bare
    assert set(defaulting) == set(lacking)  # nothing was looked up as missing, so nothing was made up
    assert parse_record(MappingProxyType(_row()), now=NOW, zone=LONDON) == full


def dataclasses_replace(record: ConsentRecord, **changes: object) -> ConsentRecord:
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_the_shapes_in_use_are_the_ones_the_rule_builds() -> None:
    """Built again here (mutation testing cannot reach what ran at import): each separator, fraction length and offset."""
    shapes = records._date_time_shapes()
    assert shapes == records._DATE_TIME_SHAPES
    assert len(shapes) == 3 * 19 * 5
    for separator in "Tt ":
        for offset in ("", "Z", "z", "+99:99", "-99:99"):
            for fraction in ("", ".9", ",9", ".999999", ",999999999", ".999999999"):
                assert f"9999-99-99{separator}99:99:99{fraction}{offset}".encode() in shapes
    assert b"9999-99-99T99:99:99.9999999999" not in shapes  # ten fraction digits take the pattern
    assert all(isinstance(shape, bytes) for shape in shapes)


def test_an_hour_with_a_seconds_long_fold_at_its_end_is_not_uniform() -> None:
    """Baghdad's clocks went back 4 s at midnight 1890 (LMT +2:57:40 to BMT +2:57:36): caught at the hour's end."""
    baghdad = ZoneInfo("Asia/Baghdad")
    hours = records._Hours(baghdad)
    moment = datetime(1889, 12, 31, 23, 59, 58)
    assert exactly(hours.wall_to_utc(moment)) == exactly(oracle_utc(moment, baghdad))
    assert hours._starts == {(1889, 12, 31, 23): ()}


def test_accepted_texts_are_remembered_per_kind_of_column_and_the_memory_is_bounded() -> None:
    """A text's answer is kept under the text itself (a str subclass is not kept); the memory never outgrows its size."""

    class Text(str):
        __slots__ = ()

    parser = RowParser(now=FAR_NOW, zone=LONDON)
    assert answer_of(parser, "2025-06-01T09:30:00+01:00", "updated_at") == datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    assert parser._date_times == {
        "2025-06-01T09:30:00Z": datetime(2025, 6, 1, 9, 30, tzinfo=UTC),
        "2025-06-01T09:30:00+01:00": datetime(2025, 6, 1, 8, 30, tzinfo=UTC),
    }
    assert answer_of(parser, "2030-12-31", "expires_at") == datetime(2031, 1, 1, tzinfo=UTC)  # the end of that day
    assert parser._dates_allowed == {"2030-12-31": datetime(2031, 1, 1, tzinfo=UTC)}
    assert answer_of(parser, Text("2025-06-01T10:30:00Z"), "updated_at") == datetime(2025, 6, 1, 10, 30, tzinfo=UTC)
    assert len(parser._date_times) == 2
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for n in range(TIMESTAMP_CACHE_SIZE + 1):
        answer_of(parser, (start + timedelta(seconds=n)).isoformat(), "updated_at")
        assert len(parser._date_times) <= TIMESTAMP_CACHE_SIZE


def test_parse_record_makes_a_new_parser_when_now_or_the_zone_changes() -> None:
    """A recorded_at in the future of one `now` is accepted under a later one, and a naive time follows the zone."""
    row = _row()
    row["recorded_at"] = "2026-01-15T13:00:00Z"
    later = NOW + timedelta(hours=2)
    assert isinstance(parse_record(row, now=NOW, zone=LONDON), QuarantinedRecord)
    assert isinstance(parse_record(row, now=later, zone=LONDON), ConsentRecord)
    assert isinstance(parse_record(row, now=NOW, zone=LONDON), QuarantinedRecord)
    row["recorded_at"] = "2025-06-01T09:30:00"
    london = parse_record(row, now=NOW, zone=LONDON)
    lord_howe = parse_record(row, now=NOW, zone=LORD_HOWE)
    assert isinstance(london, ConsentRecord) and isinstance(lord_howe, ConsentRecord)
    assert london.recorded_at == datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    assert lord_howe.recorded_at == datetime(2025, 5, 31, 23, 0, tzinfo=UTC)


def test_ids_that_are_not_text_are_read_as_their_text() -> None:
    """A driver's integer record id, person id and consent version become their text, as normalize_text reads them."""
    item = RowParser(now=NOW, zone=LONDON).parse([42, 1234, "refused", None, None, "2025-06-01T09:30:00Z", None, "open", 2, None])
    assert isinstance(item, ConsentRecord)
    assert (item.record_id, item.person_id, item.consent_version) == ("42", "1234", "2")


def test_naive_times_around_every_transition_of_every_installed_zone_get_the_oracles_instant() -> None:
    """Just before, at, and after each transition (either fold's wall time) of every zone: the exact conversion's answer.

    Reads the transitions with the pure-Python zoneinfo (a private module, hence the skip).
    """
    pure = getattr(importlib.import_module("zoneinfo._zoneinfo"), "ZoneInfo", None)
    if pure is None or not hasattr(pure.no_cache("Europe/London"), "_trans_local"):
        pytest.skip("the pure-Python zoneinfo's transition list is not available")
    epoch = datetime(1970, 1, 1)
    steps = [timedelta(microseconds=-1), timedelta(0), timedelta(seconds=1), timedelta(minutes=-30), timedelta(minutes=59)]
    for key in sorted(zoneinfo.available_timezones()):
        zone = ZoneInfo(key)
        hours = records._Hours(zone)
        for wall in {*pure.no_cache(key)._trans_local[0], *pure.no_cache(key)._trans_local[1]}:
            for step in steps:
                try:
                    moment = epoch + timedelta(seconds=wall) + step
                except OverflowError:
                    continue
                try:
                    want = exactly(oracle_utc(moment, zone))
                except OverflowError:
                    with pytest.raises(OverflowError):
                        hours.wall_to_utc(moment)
                    continue
                assert exactly(hours.wall_to_utc(moment)) == want, (key, moment)
