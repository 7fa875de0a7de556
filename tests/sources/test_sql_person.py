"""Person reads from SQL: index-backed, yet never missing a record that a whole read attributes to the person."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.adapters.sql import SqlConsentSource, layout
from flagsync.core.model import CONTRACT_COLUMNS, ConsentRecord, Decision, QuarantinedRecord, QuarantineReason, SourceItem

from .conftest import CONTRACT, NOW, Database, make_row

# Padded and otherwise odd spellings of P1001: Python's strip() reads each of them as P1001.
PADDED = [" P1001 ", "\tP1001", "P1001\n", "P1001\u3000", "\u00a0P1001", "\x1fP1001\x0b", "P1001  \r\n", "\u2028P1001\u205f"]
# Values that are not P1001 but sort right next to it.
NEAR_MISSES = ["P1001x", "P10010", "P100", " P1001x", "P1001 x", "p1001", "P1001-", "P1001\u00e9", "!P1001", "0P1001"]


def source_for(db: Database, table: str = "consent_records") -> SqlConsentSource:
    return SqlConsentSource(db.url, table, None, None)


def attributed(items: list[SourceItem], person_id: str) -> list[SourceItem]:
    return sorted((i for i in items if i.person_id == person_id), key=repr)


def both_reads(source: SqlConsentSource, person_id: str) -> tuple[list[SourceItem], list[SourceItem]]:
    """(what read_person returns, what read_all attributes to the person), each in a fixed order."""
    try:
        scoped = sorted(source.read_person(person_id, NOW), key=repr)
        whole = attributed(list(source.read_all(NOW)), person_id)
    finally:
        source.close()
    return scoped, whole


def padded_rows() -> list[dict[str, str | None]]:
    rows = [make_row("grant", "P1001", recorded_at="2025-01-01T09:00:00")]
    rows += [make_row(f"pad{n}", value, decision="withdrawn", informed=None, consented_by=None) for n, value in enumerate(PADDED)]
    rows += [make_row(f"near{n}", value) for n, value in enumerate(NEAR_MISSES)]
    return rows


def record_query(seen: list[tuple[str, Any]]) -> tuple[str, Any]:
    """The statement that read the consent records (the one selecting the duplicate mark)."""
    return next((sql, params) for sql, params in reversed(seen) if "flagsync_duplicate_of" in sql)


def test_padded_withdrawals_are_found_by_a_person_read(database: Database) -> None:
    """Every padded spelling of the person id comes back from read_person, exactly as read_all attributes them."""
    database.create(padded_rows())
    database.execute("CREATE INDEX consent_records_person_id ON consent_records (person_id)")
    scoped, whole = both_reads(source_for(database), "P1001")
    assert scoped == whole
    assert {item.record_id for item in scoped} == {"grant", *(f"pad{n}" for n in range(len(PADDED)))}
    assert all(isinstance(i, ConsentRecord) and i.decision is Decision.WITHDRAWN for i in scoped if i.record_id != "grant")


@pytest.mark.postgres
@pytest.mark.parametrize("collation", ["flagsync_ignore_spaces", "en-x-icu", "und-x-icu", "C", "POSIX"])
def test_postgresql_non_c_collations_still_find_padded_rows(postgres: Database, collation: str) -> None:
    """A column with a linguistic collation (one that ignores spaces when sorting, too) still yields every padded row."""
    # ICU's "shifted" alternate handling ignores spaces and punctuation at the first level, as glibc's en_US does.
    postgres.execute("CREATE COLLATION IF NOT EXISTS flagsync_ignore_spaces (provider = icu, locale = 'en-u-ka-shifted')")
    postgres.create(padded_rows(), columns=CONTRACT)
    postgres.execute(f'ALTER TABLE consent_records ALTER COLUMN person_id TYPE text COLLATE "{collation}"')
    scoped, whole = both_reads(source_for(postgres), "P1001")
    assert scoped == whole
    assert len(scoped) == 1 + len(PADDED)


@pytest.mark.postgres
def test_postgresql_char_and_varchar_columns(postgres: Database) -> None:
    """Blank-padded CHAR(n) and VARCHAR person id columns give the person read what the whole read attributes."""
    for kind in ("char(12)", "varchar(40)"):
        postgres.execute("DROP TABLE IF EXISTS consent_records")
        postgres.create(padded_rows(), columns=CONTRACT)
        postgres.execute(f"ALTER TABLE consent_records ALTER COLUMN person_id TYPE {kind}")
        scoped, whole = both_reads(source_for(postgres), "P1001")
        assert scoped == whole
        assert len(scoped) == 1 + len(PADDED)


def test_sqlite_values_of_any_storage_class_are_found(tmp_path: Path) -> None:
    """SQLite keeps blobs, integers and reals in an untyped column: a person read finds whatever names the person."""
    db = tmp_path / "consent.db"
    names = ", ".join(CONTRACT_COLUMNS)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(f"CREATE TABLE consent_records ({names})")  # no declared types: no affinity, values kept as given
        conn.execute("CREATE INDEX consent_records_person_id ON consent_records (person_id)")
        values: list[object] = [1001, b" 1001 ", "1001", b"P1001", b"\tP1001 ", float("inf"), "inf", 1001.5, 10010, b"1001x"]
        for n, value in enumerate(values):
            row = make_row(f"r{n}", "placeholder")
            conn.execute(
                f"INSERT INTO consent_records VALUES ({', '.join('?' * len(CONTRACT_COLUMNS))})",  # noqa: S608 - placeholders only
                [value if name == "person_id" else row[name] for name in CONTRACT_COLUMNS],
            )
        conn.commit()
    db_handle = Database(f"sqlite:///{db}")
    try:
        for person in ("1001", "P1001", "inf", "10010"):
            scoped, whole = both_reads(source_for(db_handle), person)
            assert scoped == whole, person
            assert scoped, person
    finally:
        db_handle.engine.dispose()


def test_sqlite_person_read_uses_the_index(tmp_path: Path, statements: list[tuple[str, Any]]) -> None:
    """EXPLAIN QUERY PLAN of the person read searches the person_id index and scans no table."""
    db = Database(f"sqlite:///{tmp_path / 'consent.db'}")
    db.create([make_row(f"r{n}", f"P{n}") for n in range(50)], columns=CONTRACT)
    db.execute("CREATE INDEX consent_records_person_id ON consent_records (person_id)")
    db.execute("CREATE INDEX consent_records_record_id ON consent_records (record_id)")
    source = source_for(db)
    try:
        assert len(list(source.read_person("P7", NOW))) == 1
    finally:
        source.close()
        db.engine.dispose()
    sql, params = record_query(statements)
    with contextlib.closing(sqlite3.connect(tmp_path / "consent.db")) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert any("SEARCH consent_records USING INDEX consent_records_person_id" in step for step in plan), plan
    assert any("USING COVERING INDEX consent_records_record_id" in step for step in plan), plan  # the duplicate check
    assert not any(step.startswith("SCAN") for step in plan), plan


@pytest.mark.postgres
def test_postgresql_person_read_uses_the_index(postgres: Database, statements: list[tuple[str, Any]]) -> None:
    """PostgreSQL's EXPLAIN of the person read (sequential scans off) uses the COLLATE "C" index, not a Seq Scan."""
    postgres.create([make_row(f"r{n}", f"P{n}") for n in range(200)], columns=CONTRACT)
    postgres.execute('CREATE INDEX consent_records_person_id_c ON consent_records (person_id COLLATE "C")')
    postgres.execute("CREATE INDEX consent_records_record_id ON consent_records (record_id)")
    postgres.execute("ANALYZE consent_records")
    source = source_for(postgres)
    try:
        assert len(list(source.read_person("P7", NOW))) == 1
    finally:
        source.close()
    sql, params = record_query(statements)
    with postgres.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params))
    assert "Index Scan" in plan or "Index Only Scan" in plan, plan
    assert "consent_records_person_id_c" in plan, plan
    assert "consent_records_record_id" in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.postgres
def test_postgresql_plain_index_serves_a_c_collated_column(postgres: Database, statements: list[tuple[str, Any]]) -> None:
    """A column whose own collation is "C" needs no COLLATE in the query, so a plain index serves it."""
    postgres.create([make_row(f"r{n}", f"P{n}") for n in range(200)], columns=CONTRACT)
    postgres.execute('ALTER TABLE consent_records ALTER COLUMN person_id TYPE text COLLATE "C"')
    postgres.execute("CREATE INDEX consent_records_person_id ON consent_records (person_id)")
    postgres.execute("ALTER TABLE consent_records ADD PRIMARY KEY (record_id)")
    postgres.execute("ANALYZE consent_records")
    source = source_for(postgres)
    try:
        assert len(list(source.read_person("P7", NOW))) == 1
    finally:
        source.close()
    sql, params = record_query(statements)
    assert "COLLATE" not in sql
    with postgres.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params))
    assert "consent_records_person_id" in plan and "Seq Scan" not in plan, plan


@pytest.mark.postgres
def test_postgresql_integer_person_ids(postgres: Database) -> None:
    """An integer person id column is matched by value; an id that is not an integer names nobody (and is no error)."""
    postgres.create(
        [{**make_row("r1"), "person_id": 12}, {**make_row("r2"), "person_id": 120}],
        columns=CONTRACT,
        types={"person_id": sa.Integer()},
    )
    scoped, whole = both_reads(source_for(postgres), "12")
    assert scoped == whole and [i.record_id for i in scoped] == ["r1"]
    source = source_for(postgres)
    try:
        assert list(source.read_person("P12", NOW)) == []
        assert list(source.read_person("012", NOW)) == []
    finally:
        source.close()


def test_duplicates_are_found_by_a_person_read_without_a_unique_key(database: Database) -> None:
    """A record id the person shares with someone else's row is quarantined in the person read as in the whole read."""
    database.create([make_row("r1", "P1"), make_row("r2", "P2"), make_row("r2", " P1", decision="withdrawn")])
    scoped, whole = both_reads(source_for(database), "P1")
    assert scoped == whole
    assert QuarantinedRecord("r2", "P1", QuarantineReason.DUPLICATE_RECORD_ID, "record_id") in scoped


def test_a_unique_record_id_skips_the_duplicate_query(database: Database, statements: list[tuple[str, Any]]) -> None:
    """With a primary key on the record id no duplicate can exist, and no GROUP BY or count is sent."""
    database.create([make_row("r1", "P1"), make_row("r2", "P2")], columns=CONTRACT)
    database.execute("CREATE TABLE keyed AS SELECT * FROM consent_records")
    database.execute("DROP TABLE consent_records")
    names = ", ".join(f"{name} TEXT" + (" PRIMARY KEY" if name == "record_id" else "") for name in CONTRACT)
    database.execute(f"CREATE TABLE consent_records ({names})")
    database.execute("INSERT INTO consent_records SELECT * FROM keyed")
    source = source_for(database)
    try:
        assert len(list(source.read_all(NOW))) == 2
        assert len(list(source.read_person("P1", NOW))) == 1
    finally:
        source.close()
    reads = [sql for sql, _ in statements if "flagsync_duplicate_of" in sql]
    assert len(reads) == 2
    assert not any("GROUP BY" in sql or "count(" in sql.lower() for sql in reads)


def test_a_partial_unique_index_is_not_trusted(tmp_path: Path) -> None:
    """A unique index covering only some rows does not stop the duplicate check: duplicates elsewhere are quarantined."""
    db = Database(f"sqlite:///{tmp_path / 'consent.db'}")
    db.create([make_row("r1", "P1"), make_row("r1", "P1", decision="refused"), make_row("r2", "P2")], columns=CONTRACT)
    db.execute("CREATE UNIQUE INDEX granted_once ON consent_records (record_id) WHERE decision = 'granted'")
    scoped, whole = both_reads(source_for(db), "P1")
    db.engine.dispose()
    assert scoped == whole
    assert [i.reason for i in scoped if isinstance(i, QuarantinedRecord)] == [QuarantineReason.DUPLICATE_RECORD_ID] * 2


def test_whitespace_ranges_hold_every_character_strip_removes() -> None:
    """Every character str.strip() removes lies in one of the two ranges the person probes search."""
    stripped = [chr(c) for c in range(0x110000) if not chr(c).strip()]
    ascii_range = (layout._ASCII_SPACE_FIRST, layout._ASCII_SPACE_LAST)
    wide_range = (layout._WIDE_SPACE_FIRST, layout._WIDE_SPACE_LAST)
    assert all(ascii_range[0] <= c <= ascii_range[1] or wide_range[0] <= c <= wide_range[1] for c in stripped)
    id_characters = "0123456789-_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert all(ascii_range[1] < c < wide_range[0] for c in id_characters)  # no person id character is in either range


spaces = st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2000", "\u3000", ""])
noise = st.sampled_from(["", "x", "0", "-", "_", "!", "\x00", "\u00e9", "P", " x"])
people = st.sampled_from(["P1", "P10", "P1x", "p1", "Q1"])
cells = st.builds(lambda a, b, p, c, d: a + b + p + c + d, spaces, spaces, people, spaces | noise, spaces)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cells, min_size=1, max_size=12), people)
def test_person_read_equals_the_whole_read_filtered(values: list[str], person: str) -> None:
    """For any padded or near-miss person id cells (SQLite), read_person is the whole read filtered to that person."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'consent.db'}")
        db.create([make_row(f"r{n}", value) for n, value in enumerate(values)], columns=CONTRACT)
        db.execute("CREATE INDEX consent_records_person_id ON consent_records (person_id)")
        scoped, whole = both_reads(source_for(db), person)
        db.engine.dispose()
    assert scoped == whole
