"""The CSV source's per-file person index and its field size limit."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flagsync.adapters.csv.source as module
from flagsync.adapters.csv import FIELD_LIMIT, CsvConsentSource
from flagsync.core.model import ConsentRecord, Decision, QuarantinedRecord, QuarantineReason, SourceItem
from flagsync.errors import SourceError

from .conftest import CANARY, NOW, make_row, write_csv


def scoped_and_whole(source: CsvConsentSource, person_id: str) -> tuple[list[SourceItem], list[SourceItem]]:
    return list(source.read_person(person_id, NOW)), [i for i in source.read_all(NOW) if i.person_id == person_id]


def decisions(items: list[SourceItem]) -> list[tuple[str | None, str]]:
    return [(i.record_id, i.decision.value if isinstance(i, ConsentRecord) else i.reason.value) for i in items]


# ---------------------------------------------------------------------------------------------
# Field size


def test_a_long_value_in_an_unread_column_is_read_fine(tmp_path: Path) -> None:
    """A 140,000-character notes value (over csv's default 128 KiB limit) does not stop the read."""
    rows = [make_row("r1", "P1", notes="n" * 140_000), make_row("r2", "P2")]
    source = CsvConsentSource(write_csv(tmp_path / "c.csv", rows))
    assert [i.record_id for i in source.read_all(NOW)] == ["r1", "r2"]
    assert [i.record_id for i in source.read_person("P1", NOW)] == ["r1"]


@pytest.mark.parametrize("quoted", [False, True])
def test_a_value_over_the_limit_fails_the_read_naming_line_and_column(tmp_path: Path, quoted: bool) -> None:
    """A field longer than FIELD_LIMIT fails the read with its line and column index, and none of its content."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2")])
    names = list(make_row("r3", "P3"))
    cells = [str(make_row("r3", "P3")[name] or "") for name in names]
    at = names.index("notes")
    cells[at] = CANARY["notes"] + "x" * FIELD_LIMIT
    if quoted:
        cells[at] = '"' + cells[at].replace("x" * 10, 'x"",\nxxxxx', 1) + '"'  # a doubled quote, a comma and a newline inside
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(",".join(cells) + "\n")
    with pytest.raises(SourceError) as caught:
        list(CsvConsentSource(path).read_all(NOW))
    message = str(caught.value)
    assert f"column index {at}" in message
    assert "line 4" in message or "line 5" in message
    assert CANARY["notes"] not in message and "xxxxxxxxxx" not in message


def test_the_field_limit_is_set_again_if_changed(tmp_path: Path) -> None:
    """Whatever else lowered csv's process-wide limit, a read puts FIELD_LIMIT back before reading."""
    previous = csv.field_size_limit(1000)
    try:
        rows = [make_row("r1", "P1", notes="n" * 5000)]
        assert len(list(CsvConsentSource(write_csv(tmp_path / "c.csv", rows)).read_all(NOW))) == 1
        assert csv.field_size_limit() == FIELD_LIMIT
    finally:
        csv.field_size_limit(max(previous, FIELD_LIMIT))


# ---------------------------------------------------------------------------------------------
# The person index


def test_the_index_is_rebuilt_when_the_file_grows(tmp_path: Path) -> None:
    """A withdrawal appended after the index was built is seen by the next person read."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2")])
    source = CsvConsentSource(path)
    assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted")]
    with path.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(make_row("r3", " P1 ", decision="withdrawn", informed="", consented_by="").values())
    assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted"), ("r3", "withdrawn")]


def test_the_index_is_rebuilt_after_a_same_size_rewrite_with_the_old_mtime(tmp_path: Path) -> None:
    """Rewriting the file to the same size and putting its mtime back still rebuilds the index (ctime moved)."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2")])
    source = CsvConsentSource(path)
    assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted")]
    before = path.stat()
    path.write_bytes(path.read_bytes().replace(b"granted", b"refused", 1))  # the same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert decisions(list(source.read_person("P1", NOW))) == [("r1", "refused")]


def test_a_recently_modified_file_is_checked_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the racy window a rewrite the stat cannot show (same identity) is caught by the content hash."""
    withdrawal = {"decision": "withdrawn", "informed": "", "consented_by": ""}
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2", **withdrawal)])
    source = CsvConsentSource(path)
    assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted")]
    kept = source._index
    assert kept is not None and kept.racy_until_ns  # just written: racy
    # The same size, every row where it was: only the index says whose row r2 is, and it is now P1's.
    path.write_bytes(path.read_bytes().replace(b"r2,P2,", b"r2,P1,", 1))
    monkeypatch.setattr(module, "_identity", lambda _stat: kept.identity)  # as if the rewrite fell in the same tick
    assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted"), ("r2", "withdrawn")]


def test_the_content_check_stops_once_the_window_has_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one content check made past the racy window, person reads trust the stat alone and rebuild nothing."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2")])
    source = CsvConsentSource(path)
    list(source.read_person("P1", NOW))
    hashes, builds = [], []
    real_digest, real_build = module.hashlib.file_digest, source._build_index
    monkeypatch.setattr(module.hashlib, "file_digest", lambda *a, **k: hashes.append(1) or real_digest(*a, **k))
    monkeypatch.setattr(source, "_build_index", lambda: builds.append(1) or real_build())
    monkeypatch.setattr(module.time, "time_ns", lambda: path.stat().st_mtime_ns + 10 * module.RACY_WINDOW_NS)
    for person in ("P1", "P2", "P1", "P9"):
        list(source.read_person(person, NOW))
    assert (len(hashes), len(builds)) == (1, 0)


def test_duplicates_across_people_are_quarantined_in_a_person_read(tmp_path: Path) -> None:
    """A record id the person shares with another person's row is a duplicate in the person read too."""
    rows = [make_row("r1", "P1"), make_row("r2", "P2"), make_row(" r2 ", "P1", decision="withdrawn"), make_row("r3", "")]
    scoped, whole = scoped_and_whole(CsvConsentSource(write_csv(tmp_path / "c.csv", rows)), "P1")
    assert scoped == whole
    assert QuarantinedRecord("r2", "P1", QuarantineReason.DUPLICATE_RECORD_ID, "record_id") in scoped


def test_index_memory_is_bounded_per_row(tmp_path: Path) -> None:
    """The kept index costs under 60 bytes a row for 20,000 one-row people (offsets, chains, flags, person table)."""
    rows = [make_row(f"CR-{n:08d}", f"P{n:07d}") for n in range(20_000)]
    source = CsvConsentSource(write_csv(tmp_path / "c.csv", rows))
    assert len(list(source.read_person("P0000042", NOW))) == 1
    index = source._index
    assert index is not None
    held = (
        index.people.nbytes()
        + sum(a.itemsize * len(a) for a in (index.first_row, index.next_row, index.offsets))
        + len(index.repeated)
    )
    assert held / 20_000 < 60


spaces = st.sampled_from(["", " ", "\t", "\u00a0", "  "])
people = st.sampled_from(["P1", "P2", "P10", "p1"])
row_strategy = st.builds(
    lambda rid, pad_a, person, pad_b, decision, notes: make_row(rid, pad_a + person + pad_b, decision=decision, notes=notes),
    st.sampled_from(["r1", "r2", "r3", "r4", " r1", "r5 "]),
    spaces,
    people | st.just("") | st.just("P 1"),
    spaces,
    st.sampled_from(["granted", "withdrawn", "refused", "maybe"]),
    st.sampled_from(["", "a, b", 'say "hi"', "line one\nline two", "x" * 50]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, max_size=12), st.booleans())
def test_person_read_equals_the_whole_read_filtered(rows: list[dict[str, str | None]], blank_lines: bool) -> None:
    """For any rows (padded ids, duplicates, quoted newlines, blank lines) each person read is the whole read filtered."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "c.csv", rows, header=list(make_row("x", "y")))
        if blank_lines:
            path.write_bytes(path.read_bytes().replace(b"\r\n", b"\r\n\r\n"))
        source = CsvConsentSource(path)
        for person in ("P1", "P2", "P10", "p1", "P3"):
            scoped, whole = scoped_and_whole(source, person)
            assert scoped == whole
            assert all(item.person_id == person for item in scoped)


def test_a_granted_person_with_a_padded_withdrawal_is_not_added(tmp_path: Path) -> None:
    """The privacy case: a later withdrawal written as ' P1001 ' decides the person read, so no flag is wanted."""
    rows = [
        make_row("grant", "P1001", recorded_at="2025-01-01T09:00:00"),
        make_row("withdraw", " P1001\t", decision="withdrawn", informed="", consented_by="", recorded_at="2025-06-01T09:00:00"),
    ]
    items = list(CsvConsentSource(write_csv(tmp_path / "c.csv", rows)).read_person("P1001", NOW))
    latest = max((i for i in items if isinstance(i, ConsentRecord)), key=lambda i: i.recorded_at)
    assert latest.decision is Decision.WITHDRAWN
