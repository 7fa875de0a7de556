"""The CSV source's person index saved on disk: a new process reads a person without reading the whole file.

Each `CsvConsentSource` made here stands for a new process (nothing in memory), sharing only the
saved index file.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

import flagsync.adapters.csv.saved as saved_module
import flagsync.adapters.csv.source as module
from flagsync.adapters.csv import CsvConsentSource, SavedIndex, derive_index_key
from flagsync.adapters.csv.index import PersonIndex
from flagsync.core.model import ConsentRecord, SourceItem
from flagsync.errors import SourceError

from .conftest import CANARY, NOW, make_row, write_csv

KEY = derive_index_key(b"test pseudonym key")


@pytest.fixture(autouse=True)
def _long_settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by a test count as modified long before their index is built (only settled indexes are saved)."""
    monkeypatch.setattr(module, "RACY_WINDOW_NS", 0)


@pytest.fixture(autouse=True)
def _saves_end_within_their_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every index a test hands over is saved (or has failed) before the test ends.

    The saver's thread outlives a source that is never closed (and one whose close gave up): without
    this, a save finishing late could log into a later test's `capture_logs`, whose exact lists of
    events would then fail by chance. A save still running 10 s after its test fails that test.

    What the saver's thread logs outside `capture_logs` goes to a buffer of the test's own: structlog's
    default writes to file descriptor 1, which pytest's fd capture hands back to the terminal between
    a test's phases, just when a save handed over at the end of a test tends to log.
    """
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(io.StringIO()))  # undone by tests/conftest.py
    savers: list[saved_module.IndexSaver] = []
    original = saved_module.IndexSaver.__init__

    def remembered(self: saved_module.IndexSaver, save: Callable[[PersonIndex], None]) -> None:
        original(self, save)
        savers.append(self)

    monkeypatch.setattr(saved_module.IndexSaver, "__init__", remembered)
    yield
    assert all(saver.flush(10) for saver in savers), "an index save was still running 10 s after its test"


def saved_at(tmp_path: Path, key: bytes = KEY, key_id: str = "k1") -> SavedIndex:
    return SavedIndex(tmp_path / "state.db-csv-person-index", key, key_id)


def new_process(path: Path, saved: SavedIndex, columns: dict[str, str] | None = None) -> CsvConsentSource:
    return CsvConsentSource(path, columns, saved=saved)


def build_and_save(path: Path, saved: SavedIndex, person: str = "P1") -> list[SourceItem]:
    """What a process does: a person read (building its own index), then close (waiting for the save)."""
    source = new_process(path, saved)
    items = list(source.read_person(person, NOW))
    source.close()
    assert saved.path.exists()
    return items


def no_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count index builds in any source (the saved index is meant to make them unnecessary)."""
    builds: list[int] = []
    real = CsvConsentSource._build_index

    def counted(self: CsvConsentSource) -> PersonIndex:
        builds.append(1)
        return real(self)

    monkeypatch.setattr(CsvConsentSource, "_build_index", counted)
    return builds


def decisions(items: list[SourceItem]) -> list[tuple[str | None, str]]:
    return [(i.record_id, i.decision.value if isinstance(i, ConsentRecord) else i.reason.value) for i in items]


def rows_for(count: int) -> list[dict[str, str | None]]:
    return [make_row(f"r{n}", f"P{n}") for n in range(count)]


# ---------------------------------------------------------------------------------------------
# Used when it describes the file


def test_a_new_process_reads_a_person_through_the_saved_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "c.csv", [*rows_for(50), make_row("w7", " P7 ", decision="withdrawn", informed="")])
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    builds = no_builds(monkeypatch)
    source = new_process(path, saved)
    assert decisions(list(source.read_person("P7", NOW))) == [("r7", "granted"), ("w7", "withdrawn")]
    assert decisions(list(source.read_person("P49", NOW))) == [("r49", "granted")]
    assert list(source.read_person("P999", NOW)) == []
    assert builds == []
    assert source._index is None  # nothing built in this process


def test_repeated_record_ids_are_quarantined_through_the_saved_index(tmp_path: Path) -> None:
    """Whether a record id repeats is a property of the whole file: the saved index carries it."""
    rows = [make_row("r1", "P1"), make_row("r2", "P2"), make_row(" r2 ", "P1", decision="withdrawn")]
    path = write_csv(tmp_path / "c.csv", rows)
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    source = new_process(path, saved)
    scoped = list(source.read_person("P1", NOW))
    assert scoped == [i for i in source.read_all(NOW) if i.person_id == "P1"]
    assert decisions(scoped) == [("r1", "granted"), ("r2", "DUPLICATE_RECORD_ID")]


spaces = st.sampled_from(["", " ", "\t", "\u00a0"])
row_strategy = st.builds(
    lambda rid, pad_a, person, pad_b, decision, notes: make_row(rid, pad_a + person + pad_b, decision=decision, notes=notes),
    st.sampled_from(["r1", "r2", "r3", "r4", " r1", "r5 "]),
    spaces,
    st.sampled_from(["P1", "P2", "P10", "p1", "", "P 1"]),
    spaces,
    st.sampled_from(["granted", "withdrawn", "refused", "maybe"]),
    st.sampled_from(["", "a, b", 'say "hi"', "line one\nP1,r9,granted", "x" * 50]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(row_strategy, min_size=1, max_size=12), st.booleans())
def test_a_read_through_the_saved_index_is_the_whole_read_filtered(
    monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, str | None]], colliding: bool
) -> None:
    """For any rows (padded ids, duplicates, quoted newlines that look like rows), and even when every id shares a hash."""
    if colliding:
        monkeypatch.setattr(SavedIndex, "short_hash", lambda self, encoded: 7)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "c.csv", rows, header=list(make_row("x", "y")))
        saved = saved_at(Path(tmp))
        build_and_save(path, saved)
        source = new_process(path, saved)
        whole = list(CsvConsentSource(path).read_all(NOW))
        for person in ("P1", "P2", "P10", "p1", "P3"):
            assert list(source.read_person(person, NOW)) == [i for i in whole if i.person_id == person]
        assert source._index is None


# ---------------------------------------------------------------------------------------------
# Not used when it may not describe the file


def test_an_appended_withdrawal_is_seen_and_the_index_saved_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "c.csv", rows_for(5))
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    with path.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(make_row("w1", "P1", decision="withdrawn", informed="", consented_by="").values())
    builds = no_builds(monkeypatch)
    first = new_process(path, saved)
    assert decisions(list(first.read_person("P1", NOW))) == [("r1", "granted"), ("w1", "withdrawn")]
    first.close()
    assert builds == [1]
    second = new_process(path, saved)
    assert decisions(list(second.read_person("P1", NOW))) == [("r1", "granted"), ("w1", "withdrawn")]
    assert builds == [1]  # the second process used what the first saved


def test_a_same_size_rewrite_with_the_old_mtime_is_not_read_through_the_saved_index(tmp_path: Path) -> None:
    """The rewrite keeps size and mtime; ctime moves, so the saved index is not trusted."""
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    before = path.stat()
    path.write_bytes(path.read_bytes().replace(b"r1,P1,granted", b"r1,P1,refused", 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert decisions(list(new_process(path, saved).read_person("P1", NOW))) == [("r1", "refused")]


def test_an_index_of_a_recently_modified_file_is_not_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the racy window only content hashing can trust an index; a new process cannot, so nothing is saved."""
    monkeypatch.setattr(module, "RACY_WINDOW_NS", 3_600 * 10**9)
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    saved = saved_at(tmp_path)
    source = new_process(path, saved)
    list(source.read_person("P1", NOW))
    source.close()
    assert not saved.path.exists()
    with pytest.raises(ValueError, match="trusted by identity"):
        saved.save(source._index)  # type: ignore[arg-type]


def test_it_is_saved_once_the_racy_window_has_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "RACY_WINDOW_NS", 3_600 * 10**9)
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    saved = saved_at(tmp_path)
    source = new_process(path, saved)
    list(source.read_person("P1", NOW))
    monkeypatch.setattr(module.time, "time_ns", lambda: path.stat().st_ctime_ns + 2 * module.RACY_WINDOW_NS)
    list(source.read_person("P2", NOW))  # the content check past the window settles the index
    source.close()
    assert saved.path.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],  # truncated
        lambda data: data[:200] + bytes([data[200] ^ 1]) + data[201:],  # one bit flipped
        lambda data: b"",
        lambda data: b"not an index at all" * 10,
    ],
    ids=["truncated", "bit-flipped", "empty", "garbage"],
)
def test_a_damaged_saved_index_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[bytes], bytes]
) -> None:
    path = write_csv(tmp_path / "c.csv", rows_for(20))
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    saved.path.write_bytes(damage(saved.path.read_bytes()))
    assert saved.load() is None
    builds = no_builds(monkeypatch)
    assert decisions(list(new_process(path, saved).read_person("P3", NOW))) == [("r3", "granted")]
    assert builds == [1]


def test_an_index_saved_under_another_key_is_not_used(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", rows_for(5))
    build_and_save(path, saved_at(tmp_path))
    assert saved_at(tmp_path, key=derive_index_key(b"another key"), key_id="k1").load() is None  # its MAC fails
    assert saved_at(tmp_path, key_id="k2").load() is None  # the same bytes, named as another key


def test_a_different_column_map_does_not_use_the_saved_index(tmp_path: Path) -> None:
    """The index says where person ids are under one column map; under another it would name the wrong column."""
    rows = [{**make_row("r1", "P1"), "other_id": "P2"}, {**make_row("r2", "P2"), "other_id": "P1"}]
    path = write_csv(tmp_path / "c.csv", rows)
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    remapped = new_process(path, saved, columns={"person_id": "other_id"})
    assert decisions(list(remapped.read_person("P1", NOW))) == [("r2", "granted")]


def test_a_saved_index_that_points_at_another_persons_row_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row whose person does not share the hash looked up means the index is wrong: the process builds its own."""
    path = write_csv(tmp_path / "c.csv", rows_for(5))
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    source = new_process(path, saved)
    lookup = source._saved_lookup()
    assert lookup is not None
    wrong = lookup.rows(saved.person_hash("P2"))
    monkeypatch.setattr(type(lookup), "rows", lambda self, _hash: wrong)
    assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted")]
    assert source._index is not None  # built its own


def test_the_file_vanishing_is_the_usual_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", rows_for(2))
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    path.unlink()
    with pytest.raises(SourceError, match="does not exist"):
        list(new_process(path, saved).read_person("P1", NOW))


# ---------------------------------------------------------------------------------------------
# What it holds, and how it is written


def test_the_saved_index_holds_no_id_and_no_value_and_is_private(tmp_path: Path) -> None:
    rows = [make_row(f"CR-{n:04d}", f"P{n:05d}") for n in range(30)]
    path = write_csv(tmp_path / "c.csv", rows)
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    data = saved.path.read_bytes()
    for canary in CANARY.values():
        assert canary.encode() not in data
    for row in rows:
        for value in (row["record_id"], row["person_id"]):
            assert value is not None
            assert value.encode() not in data
            assert value.encode("utf-16-le") not in data
    assert str(path).encode() not in data
    assert stat.S_IMODE(saved.path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_temporary_files_a_killed_process_left_are_cleared(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    saved = saved_at(tmp_path)
    old, recent = tmp_path / f".{saved.path.name}.111.222.tmp", tmp_path / f".{saved.path.name}.333.444.tmp"
    old.write_bytes(b"half an index")
    recent.write_bytes(b"being written")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    build_and_save(path, saved)
    assert not old.exists() and recent.exists()


def test_a_failed_save_is_logged_and_reads_go_on(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    saved = SavedIndex(tmp_path / "missing-dir" / "index", KEY, "k1")
    source = new_process(path, saved)
    with capture_logs() as logged:
        assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted")]
        source.close()
    assert {"event": "source.index_not_saved", "error": "FileNotFoundError", "log_level": "warning"} in logged
    assert not saved.path.exists()
    assert decisions(list(new_process(path, saved).read_person("P2", NOW))) == [("r2", "granted")]


def test_a_path_holding_another_file_is_never_overwritten(tmp_path: Path) -> None:
    """An index path naming the consent file (or the state database) by mistake: the file stays as it was."""
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    before = path.read_bytes()
    source = new_process(path, SavedIndex(path, KEY, "k1"))
    with capture_logs() as logged:
        assert decisions(list(source.read_person("P1", NOW))) == [("r1", "granted")]
        source.close()
    assert path.read_bytes() == before
    assert {"event": "source.index_not_saved", "error": "NotAnIndexError", "log_level": "warning"} in logged
    empty = tmp_path / "empty"
    empty.touch()
    build_and_save(path, SavedIndex(empty, KEY, "k1"))  # an empty file may be written (as a missing one)
    assert empty.stat().st_size > 0


def test_close_waits_for_the_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    saved = saved_at(tmp_path)
    real_save = SavedIndex.save
    started = []

    def slow_save(self: SavedIndex, index: PersonIndex) -> None:
        started.append(1)
        time.sleep(0.3)
        real_save(self, index)

    monkeypatch.setattr(SavedIndex, "save", slow_save)
    source = new_process(path, saved)
    list(source.read_person("P1", NOW))
    source.close()
    assert started == [1] and saved.path.exists()


def test_close_gives_up_after_its_wait_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's exit waits only briefly: an unfinished save is left to the next process."""
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    release = threading.Event()
    monkeypatch.setattr(SavedIndex, "save", lambda self, index: release.wait(5))
    source = CsvConsentSource(path, saved=saved_at(tmp_path), save_wait_seconds=0.05)
    list(source.read_person("P1", NOW))
    with capture_logs() as logged:
        started = time.monotonic()
        source.close()
        waited = time.monotonic() - started
    release.set()
    assert waited < 2
    assert [entry["event"] for entry in logged] == ["source.index_save_unfinished"]


def test_the_change_poll_saves_each_new_version(tmp_path: Path) -> None:
    """The daemon's change poll builds the index of each new version; the saved one follows it."""
    path = write_csv(tmp_path / "c.csv", rows_for(3))
    saved = saved_at(tmp_path)
    daemon = new_process(path, saved)
    first = daemon.changes_since(None)
    daemon.close()
    identity = saved.load()
    assert identity is not None
    with path.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(make_row("r9", "P9").values())
    assert daemon.changes_since(first.watermark).person_ids == frozenset({"P9"})
    daemon.close()
    after = saved.load()
    assert after is not None and after.identity != identity.identity and after.identity[2] == path.stat().st_size
    assert decisions(list(new_process(path, saved).read_person("P9", NOW))) == [("r9", "granted")]


def test_saved_index_rows_by_hash_follow_the_file_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two people sharing a hash: the rows of both, merged in file order (the reader then keeps the one asked for)."""
    monkeypatch.setattr(SavedIndex, "short_hash", lambda self, encoded: {b"P1": 5, b"P2": 5}.get(encoded, 9))
    path = write_csv(tmp_path / "c.csv", [make_row("a", "P2"), make_row("b", "P1"), make_row("c", "P2"), make_row("d", "P3")])
    saved = saved_at(tmp_path)
    build_and_save(path, saved)
    lookup = saved.load()
    assert lookup is not None
    offsets = [offset for offset, _ in lookup.rows(5)]
    assert offsets == sorted(offsets) and len(offsets) == 3
    assert len(lookup.rows(9)) == 1 and lookup.rows(4) == []
    assert saved_module.SAVED_INDEX_SUFFIX == "-csv-person-index"
