"""CSV change detection: a stat probe while the file is unchanged, and a per-person digest diff that names exactly who changed."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flagsync.adapters.csv.source as csv_source
from flagsync.adapters.csv import CsvConsentSource
from flagsync.ports import Changes

from .conftest import CONTRACT, NOW, make_row, write_csv

Row = dict[str, str | None]
PEOPLE = [f"P{n}" for n in range(1, 7)]


def base_rows() -> list[Row]:
    return [make_row(f"r{n}", f"P{n}") for n in range(1, 6)] + [make_row("r6", "P1", decision="refused")]


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each pass that makes a person index: "build" (the whole file) or "extend" (appended rows only)."""
    counted: list[str] = []
    build, extend = CsvConsentSource._build_index, CsvConsentSource._extended_index

    def building(self: CsvConsentSource) -> object:
        counted.append("build")
        return build(self)

    def extending(self: CsvConsentSource, old: object) -> object:
        made = extend(self, old)  # type: ignore[arg-type]
        if made is not None:
            counted.append("extend")
        return made

    monkeypatch.setattr(CsvConsentSource, "_build_index", building)
    monkeypatch.setattr(CsvConsentSource, "_extended_index", extending)
    return counted


def settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the stat identity at once (as after RACY_WINDOW_NS), so the tests see the probe's steady state."""
    monkeypatch.setattr(csv_source, "RACY_WINDOW_NS", 0)


def test_an_unchanged_file_costs_one_stat_and_no_read(tmp_path: Path, builds: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first poll, polls of an unchanged file read nothing: the index (and digests) are not rebuilt."""
    settle(monkeypatch)
    source = CsvConsentSource(write_csv(tmp_path / "c.csv", base_rows()))
    mark = source.changes_since(None).watermark

    def no_open(self: CsvConsentSource) -> object:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(CsvConsentSource, "_open", no_open)
    for _ in range(5):
        assert source.changes_since(mark) == Changes(frozenset(), mark)
    assert builds == ["build"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("append a withdrawal", {"P3"}),
        ("edit a decision", {"P2"}),
        ("delete one of two rows", {"P1"}),
        ("delete a person's only row", {"P4"}),
        ("move a row to another person", {"P5", "P9"}),
        ("edit a column flagsync does not read", set()),
        ("repeat another person's record id", {"P2", "P3"}),
    ],
)
def test_the_probe_and_diff_see_each_kind_of_change(tmp_path: Path, change: str, expected: set[str]) -> None:
    """Insert, update, deletion and moves name exactly their people; a column flagsync never reads names nobody."""
    rows = base_rows()
    path = write_csv(tmp_path / "c.csv", rows)
    source = CsvConsentSource(path)
    mark = source.changes_since(None).watermark
    edited = [dict(row) for row in rows]
    if change == "append a withdrawal":
        edited.append(make_row("r7", "P3", decision="withdrawn", informed=None, consented_by=None))
    elif change == "edit a decision":
        edited[1]["decision"] = "withdrawn"
    elif change == "delete one of two rows":
        del edited[5]
    elif change == "delete a person's only row":
        del edited[3]
    elif change == "move a row to another person":
        edited[4]["person_id"] = "P9"
    elif change == "edit a column flagsync does not read":
        edited[0]["notes"] = "something else entirely"
    else:
        edited.append(make_row("r2", "P3", recorded_at="2024-01-01T00:00:00"))
    write_csv(path, edited)
    changed = source.changes_since(mark)
    assert changed.person_ids == frozenset(expected)
    assert (changed.watermark != mark) is True
    assert source.changes_since(changed.watermark) == Changes(frozenset(), changed.watermark)


def test_a_caller_retrying_its_watermark_is_told_the_same_people(tmp_path: Path) -> None:
    """While the caller keeps its old watermark (its run failed), the version it names is kept and the same diff returned."""
    path = write_csv(tmp_path / "c.csv", base_rows())
    source = CsvConsentSource(path)
    mark = source.changes_since(None).watermark
    write_csv(path, [*base_rows(), make_row("r7", "P2", decision="withdrawn", informed=None, consented_by=None)])
    changed = source.changes_since(mark)
    assert changed.person_ids == frozenset({"P2"})
    assert source.changes_since(mark) == changed
    assert source.changes_since(changed.watermark).person_ids == frozenset()
    assert source.changes_since(mark).person_ids is None  # the caller moved on: the old version was let go


def test_a_person_read_after_a_change_uses_the_index_the_poll_built(tmp_path: Path, builds: list[str]) -> None:
    """The pass that finds who changed also makes the person index: the person sync that follows reads no more."""
    path = write_csv(tmp_path / "c.csv", base_rows())
    source = CsvConsentSource(path)
    mark = source.changes_since(None).watermark
    edited = base_rows()
    edited[1]["decision"] = "withdrawn"
    write_csv(path, edited)
    assert source.changes_since(mark).person_ids == frozenset({"P2"})
    assert builds == ["build", "build"]
    assert [item.decision.value for item in source.read_person("P2", NOW)] == ["withdrawn"]  # type: ignore[union-attr]
    assert builds == ["build", "build"]


def test_appended_rows_are_read_alone(tmp_path: Path, builds: list[str]) -> None:
    """A file that only gained rows at its end is not read again: the new rows extend a copy of the index."""
    path = write_csv(tmp_path / "c.csv", base_rows())
    source = CsvConsentSource(path)
    mark = source.changes_since(None).watermark
    appended = [make_row("r7", "P2", decision="withdrawn", informed=None, consented_by=None), make_row("r8", "P8")]
    write_csv(path, [*base_rows(), *appended])
    changed = source.changes_since(mark)
    assert changed.person_ids == frozenset({"P2", "P8"})
    assert builds == ["build", "extend"]
    assert [item.record_id for item in source.read_person("P2", NOW)] == ["r2", "r7"]  # type: ignore[union-attr]
    assert source.changes_since(mark) == changed  # the caller's old version was kept intact
    fresh = CsvConsentSource(path)
    for person in [*PEOPLE, "P8"]:
        assert sorted(map(repr, source.read_person(person, NOW))) == sorted(map(repr, fresh.read_person(person, NOW)))


@pytest.mark.parametrize(
    "tail",
    [
        [make_row("r1", "P7")],  # repeats an old record id: the full pass marks both r1 rows
        [make_row("r7", "P7"), make_row("r7", "P8")],  # a record id repeated among the new rows
    ],
)
def test_appended_rows_that_may_repeat_a_record_id_are_read_in_full(tmp_path: Path, builds: list[str], tail: list[Row]) -> None:
    """Whether a new row repeats a record id decides who is uncertain: then the whole file is read again."""
    path = write_csv(tmp_path / "c.csv", base_rows())
    source = CsvConsentSource(path)
    mark = source.changes_since(None).watermark
    write_csv(path, [*base_rows(), *tail])
    expected = {"P1", "P7"} if tail[0]["record_id"] == "r1" else {"P7", "P8"}
    assert source.changes_since(mark).person_ids == frozenset(expected)
    assert builds == ["build", "build"]


def test_a_file_that_no_longer_begins_with_the_old_bytes_is_read_in_full(tmp_path: Path, builds: list[str]) -> None:
    """An edit before the end (or a shorter file) is not an append: the whole file is read."""
    path = write_csv(tmp_path / "c.csv", base_rows())
    source = CsvConsentSource(path)
    mark = source.changes_since(None).watermark
    write_csv(path, [make_row("r0", "P9"), *base_rows()])
    assert source.changes_since(mark).person_ids == frozenset({"P9"})
    write_csv(path, base_rows()[:3])
    assert source.changes_since(mark).person_ids == frozenset({"P1", "P4", "P5"})  # r4, r5 and P1's r6 went
    assert builds == ["build", "build", "build"]


def test_a_same_content_rewrite_names_nobody(tmp_path: Path) -> None:
    """A new file with the same bytes renamed over the old one: the stat changed, the content did not."""
    path = write_csv(tmp_path / "c.csv", base_rows())
    source = CsvConsentSource(path)
    mark = source.changes_since(None).watermark
    copy = write_csv(tmp_path / "copy.csv", base_rows())
    os.replace(copy, path)
    assert source.changes_since(mark) == Changes(frozenset(), mark)


# ---------------------------------------------------------------------------------------------
# The diff names exactly the changed people, whatever the edit


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "record_id": st.sampled_from([f"r{n}" for n in range(12)]),
            "person_id": st.sampled_from([*PEOPLE, " P1 ", ""]),
            "decision": st.sampled_from(["granted", "withdrawn", "refused", "nonsense"]),
            "notes": st.sampled_from(["a", "b"]),
        }
    ),
    max_size=14,
)


def full_rows(partial: list[dict[str, str]]) -> list[Row]:
    return [make_row(row["record_id"], row["person_id"], decision=row["decision"], notes=row["notes"]) for row in partial]


def model(rows: list[Row]) -> dict[str, Counter[tuple[object, ...]]]:
    """Per person (stripped id), the multiset of (contract values as written, record id repeated in the file)."""
    ids = Counter((row["record_id"] or "").strip() for row in rows)
    people: dict[str, Counter[tuple[object, ...]]] = {}
    for row in rows:
        person = (row["person_id"] or "").strip()
        if person:
            key = (*(row.get(name) or "" for name in CONTRACT), ids[(row["record_id"] or "").strip()] > 1)
            people.setdefault(person, Counter())[key] += 1
    return people


def expected_changed(before: list[Row], after: list[Row]) -> frozenset[str]:
    old, new = model(before), model(after)
    return frozenset(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=rows_strategy, after=rows_strategy)
def test_the_diff_names_exactly_the_people_whose_rows_differ(before: list[dict[str, str]], after: list[dict[str, str]]) -> None:
    """For any two versions of the file, the poll names exactly the people whose contract rows (or duplicate marks) differ."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "c.csv"
        old, new = full_rows(before), full_rows(after)
        header = list(make_row("x"))
        write_csv(path, old, header)
        source = CsvConsentSource(path)
        mark = source.changes_since(None).watermark
        write_csv(path, new, header)
        changed = source.changes_since(mark)
        if changed.watermark == mark:
            assert changed.person_ids == frozenset() and expected_changed(old, new) == frozenset()
        else:
            assert changed.person_ids == expected_changed(old, new)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=rows_strategy, appended=rows_strategy)
def test_appending_rows_gives_what_a_fresh_read_gives(before: list[dict[str, str]], appended: list[dict[str, str]]) -> None:
    """Rows appended to a file: the diff is the model's, and every person read equals one from a fresh source."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "c.csv"
        old, new = full_rows(before), full_rows(before + appended)
        header = list(make_row("x"))
        write_csv(path, old, header)
        source = CsvConsentSource(path)
        mark = source.changes_since(None).watermark
        write_csv(path, new, header)
        changed = source.changes_since(mark)
        assert changed.person_ids == (frozenset() if changed.watermark == mark else expected_changed(old, new))
        fresh = CsvConsentSource(path)
        for person in PEOPLE:
            assert sorted(map(repr, source.read_person(person, NOW))) == sorted(map(repr, fresh.read_person(person, NOW)))
