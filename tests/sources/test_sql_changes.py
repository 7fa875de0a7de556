"""SQL change detection: a cheap probe every poll, index-backed change queries, per-person digests without updated_at."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flagsync.adapters.sql import SqlConsentSource
from flagsync.ports import Changes

from .conftest import CONTRACT, Database, eventually, make_row

WITHOUT_UPDATED_AT = [name for name in CONTRACT if name != "updated_at"]


def is_postgres(db: Database) -> bool:
    return db.url.startswith("postgresql")


def create_table(db: Database, *, updated_at: bool = True, rows: int = 3) -> sa.Table:
    """r1..rN for P1..PN, with the indexes docs/consent-source-indexes.md asks for."""
    columns = CONTRACT if updated_at else WITHOUT_UPDATED_AT
    table = db.create([make_row(f"r{n}", f"P{n}") for n in range(1, rows + 1)], columns=columns)
    person_index = '(person_id COLLATE "C")' if is_postgres(db) else "(person_id)"
    db.execute(f"CREATE INDEX consent_records_person_id ON consent_records {person_index}")
    db.execute("CREATE INDEX consent_records_record_id ON consent_records (record_id)")
    if updated_at:
        db.execute("CREATE INDEX consent_records_updated_at ON consent_records (updated_at)")
    if is_postgres(db):
        db.execute("ANALYZE consent_records")
    return table


def write(db: Database, statement: str, **params: object) -> None:
    """Run a statement in its own transaction; on PostgreSQL have its row counters reported at once."""
    with db.engine.begin() as conn:
        conn.execute(sa.text(statement), params)
        if is_postgres(db):
            conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))


INSERT_P9 = (
    "INSERT INTO consent_records (record_id, person_id, decision, informed, consented_by, recorded_at, expires_at,"
    " case_status, consent_version{extra}) VALUES ('r9', 'P9', 'withdrawn', NULL, NULL, '2025-07-01T09:00:00', NULL,"
    " 'open', 'v2'{value})"
)


def insert_p9(db: Database, *, updated_at: str | None) -> None:
    extra, value = (", updated_at", f", '{updated_at}'") if updated_at is not None else ("", "")
    write(db, INSERT_P9.format(extra=extra, value=value))


# ---------------------------------------------------------------------------------------------
# With updated_at: the probe, then the indexed watermark query


def test_the_probe_sees_an_insert_an_update_and_a_deletion(database: Database) -> None:
    """Nothing changed: nobody; a new row or an updated row: its person; a deleted row: a full reconcile."""
    create_table(database)
    source = SqlConsentSource(database.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        assert source.changes_since(mark) == Changes(frozenset(), mark)
        insert_p9(database, updated_at="2025-07-01T10:00:00+00:00")
        inserted = source.changes_since(mark)
        assert inserted.person_ids == frozenset({"P9"}) and inserted.watermark != mark
        mark = inserted.watermark
        write(
            database,
            "UPDATE consent_records SET decision = 'withdrawn', updated_at = '2025-07-02T10:00:00+00:00' WHERE record_id = 'r2'",
        )
        updated = source.changes_since(mark)
        assert updated.person_ids == frozenset({"P2"})
        mark = updated.watermark
        write(database, "DELETE FROM consent_records WHERE record_id = 'r1'")
        deleted = eventually(lambda: source.changes_since(mark), lambda c: c.person_ids is None)
        assert deleted.person_ids is None and deleted.watermark != mark
        assert source.changes_since(deleted.watermark) == Changes(frozenset(), deleted.watermark)
    finally:
        source.close()


def test_an_idle_poll_sends_only_the_probe(database: Database, statements: list[tuple[str, Any]]) -> None:
    """While nothing is committed, a poll sends one statement: PRAGMA data_version, or PostgreSQL's indexed max and counter."""
    create_table(database)
    source = SqlConsentSource(database.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        source.changes_since(mark)  # PostgreSQL: the first poll that knows the table's oid sets its probe value
        statements.clear()
        for _ in range(3):
            assert source.changes_since(mark) == Changes(frozenset(), mark)
    finally:
        source.close()
    sent = [sql for sql, _ in statements]
    assert len(sent) == 3, sent
    if is_postgres(database):
        assert all("max(consent_records.updated_at)" in sql and "pg_stat_get_tuples_deleted" in sql for sql in sent), sent
    else:
        assert all(sql == "PRAGMA data_version" for sql in sent), sent


def change_queries(seen: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The statements that read the consent table (not the catalog, not the probe's PRAGMA)."""
    return [(sql, params) for sql, params in seen if "FROM consent_records" in sql and not sql.startswith("PRAGMA")]


def test_sqlite_change_queries_use_the_indexes(tmp_path: Path, statements: list[tuple[str, Any]]) -> None:
    """EXPLAIN QUERY PLAN: the changed rows come from an updated_at index range; count(*) is a covering-index scan."""
    db = Database(f"sqlite:///{tmp_path / 'consent.db'}")
    create_table(db, rows=50)
    source = SqlConsentSource(db.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        insert_p9(db, updated_at="2025-07-01T10:00:00+00:00")
        assert source.changes_since(mark).person_ids == frozenset({"P9"})
    finally:
        source.close()
        db.engine.dispose()
    queries = change_queries(statements)
    assert len(queries) == 3, queries  # count + max (twice: first poll and after the insert), the window
    plans: list[list[str]] = []
    with contextlib.closing(sqlite3.connect(tmp_path / "consent.db")) as conn:
        for sql, params in queries:
            plans.append([row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)])
    window = [plan for (sql, _), plan in zip(queries, plans, strict=True) if "DISTINCT" in sql]
    assert window and all(
        any(
            step.startswith("SEARCH consent_records USING INDEX consent_records_updated_at (updated_at>? AND updated_at<?)")
            for step in plan
        )
        for plan in window
    ), window
    for plan in plans:
        # No query reads the table itself; count(*) and max() share one pass over the smallest covering index.
        assert all("USING COVERING INDEX" in step or "USING INDEX" in step or "TEMP B-TREE" in step for step in plan), plans


@pytest.mark.postgres
def test_postgresql_change_queries_use_the_indexes(postgres: Database, statements: list[tuple[str, Any]]) -> None:
    """PostgreSQL's EXPLAIN (sequential scans off): the probe's max() and the changed rows both come from the updated_at index."""
    create_table(postgres, rows=200)
    source = SqlConsentSource(postgres.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        source.changes_since(mark)
        insert_p9(postgres, updated_at="2025-07-01T10:00:00+00:00")
        assert source.changes_since(mark).person_ids == frozenset({"P9"})
    finally:
        source.close()
    queries = change_queries(statements)
    assert all(("max(" in sql) != ("DISTINCT" in sql) for sql, _ in queries), queries  # the probe, or the changed rows
    assert any("DISTINCT" in sql for sql, _ in queries), queries
    with postgres.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        for sql, params in queries:
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params))
            assert "consent_records_updated_at" in plan, plan
            assert "Seq Scan" not in plan, plan
            if "DISTINCT" not in sql:
                assert "Index Only Scan Backward using consent_records_updated_at" in plan, plan


@pytest.mark.postgres
def test_postgresql_probe_plan_is_an_index_lookup_with_default_planner_settings(
    postgres: Database, statements: list[tuple[str, Any]]
) -> None:
    """Without any planner setting, at 5,000 rows, the probe's max(updated_at) is one backward index step (Limit 1)."""
    postgres.create(
        [make_row(f"r{n}", f"P{n}", updated_at=f"2025-06-01T09:{n % 60:02d}:00+00:00") for n in range(5000)], columns=CONTRACT
    )
    postgres.execute("CREATE INDEX consent_records_updated_at ON consent_records (updated_at)")
    postgres.execute("ANALYZE consent_records")
    source = SqlConsentSource(postgres.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        statements.clear()
        source.changes_since(mark)
    finally:
        source.close()
    probe = next((sql, params) for sql, params in statements if "pg_stat_get_tuples_deleted" in sql)
    with postgres.engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + probe[0], probe[1]))
    assert "Index Only Scan Backward using consent_records_updated_at" in plan and "Seq Scan" not in plan, plan


def test_a_replaced_sqlite_file_is_noticed(tmp_path: Path) -> None:
    """A new database file renamed over the old one (a restore) is probed and read afresh, not through old connections."""
    path = tmp_path / "consent.db"
    db = Database(f"sqlite:///{path}")
    create_table(db)
    source = SqlConsentSource(db.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        assert source.changes_since(mark).person_ids == frozenset()
        copy = tmp_path / "copy.db"
        with contextlib.closing(sqlite3.connect(path)) as old, contextlib.closing(sqlite3.connect(copy)) as new:
            old.backup(new)
            new.execute(
                "UPDATE consent_records SET decision = 'withdrawn', updated_at = '2025-08-01T00:00:00+00:00'"
                " WHERE record_id = 'r3'"
            )
            new.commit()
        os.replace(copy, path)
        assert source.changes_since(mark).person_ids == frozenset({"P3"})
    finally:
        source.close()
        db.engine.dispose()


# ---------------------------------------------------------------------------------------------
# Without updated_at: the probe, then per-person digests


def test_without_updated_at_the_people_who_changed_are_named(database: Database) -> None:
    """Digests find a new person, an edited row and a person whose rows all went; nothing changed means nobody."""
    create_table(database, updated_at=False)
    source = SqlConsentSource(database.url, "consent_records")
    try:
        first = source.changes_since(None)
        assert first.person_ids is None  # the first poll has nothing to compare with
        mark = first.watermark
        assert source.changes_since(mark) == Changes(frozenset(), mark)

        def after(change: str) -> Changes:
            return eventually(lambda: source.changes_since(mark), lambda c: c.watermark != mark)

        insert_p9(database, updated_at=None)
        inserted = after("insert")
        assert inserted.person_ids == frozenset({"P9"})
        mark = inserted.watermark
        write(database, "UPDATE consent_records SET decision = 'refused' WHERE record_id = 'r1'")
        updated = after("update")
        assert updated.person_ids == frozenset({"P1"})
        mark = updated.watermark
        write(database, "DELETE FROM consent_records WHERE person_id = 'P2'")
        deleted = after("delete")
        assert deleted.person_ids == frozenset({"P2"})
        assert source.changes_since(deleted.watermark) == Changes(frozenset(), deleted.watermark)
    finally:
        source.close()


def test_without_updated_at_a_retried_watermark_gets_the_same_people(tmp_path: Path) -> None:
    """A caller whose run failed passes its old watermark again and is told the same people, until it moves on."""
    db = Database(f"sqlite:///{tmp_path / 'consent.db'}")
    create_table(db, updated_at=False)
    source = SqlConsentSource(db.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        write(db, "UPDATE consent_records SET decision = 'withdrawn' WHERE record_id = 'r2'")
        changed = source.changes_since(mark)
        assert changed.person_ids == frozenset({"P2"})
        assert source.changes_since(mark) == changed
        assert source.changes_since(changed.watermark) == Changes(frozenset(), changed.watermark)
    finally:
        source.close()
        db.engine.dispose()


def test_without_updated_at_a_duplicate_record_id_changes_both_people(tmp_path: Path) -> None:
    """A row that makes another person's record id repeated changes that person's digest too (their record is quarantined)."""
    db = Database(f"sqlite:///{tmp_path / 'consent.db'}")
    create_table(db, updated_at=False)
    source = SqlConsentSource(db.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        write(
            db,
            "INSERT INTO consent_records (record_id, person_id, decision, informed, consented_by, recorded_at, case_status)"
            " VALUES ('r1', 'P7', 'granted', 'yes', 'parent', '2025-06-01T09:30:00', 'open')",
        )
        assert source.changes_since(mark).person_ids == frozenset({"P1", "P7"})
    finally:
        source.close()
        db.engine.dispose()


@pytest.mark.postgres
def test_a_postgresql_view_without_updated_at_is_polled_at_a_bounded_cost(
    postgres: Database, statements: list[tuple[str, Any]]
) -> None:
    """A view keeps no row counters, so there is no probe: full change queries are spaced to at most 5% of the time."""
    create_table(postgres, updated_at=False)
    postgres.execute("CREATE VIEW consent_view AS SELECT * FROM consent_records")
    source = SqlConsentSource(postgres.url, "consent_view")
    try:
        mark = source.changes_since(None).watermark
        statements.clear()
        assert source.changes_since(mark) == Changes(frozenset(), mark)
        assert statements == []  # not looked again yet
        write(postgres, "UPDATE consent_records SET decision = 'refused' WHERE record_id = 'r3'")
        while time.monotonic() < source._quiet_until:
            time.sleep(0.01)
        assert source.changes_since(mark).person_ids == frozenset({"P3"})
    finally:
        source.close()


def test_the_newest_rows_going_asks_for_a_full_reconcile_at_once(database: Database) -> None:
    """When the newest updated_at falls (the table emptied, TRUNCATE included), the next poll asks for a full reconcile."""
    create_table(database)
    source = SqlConsentSource(database.url, "consent_records")
    try:
        mark = source.changes_since(None).watermark
        write(database, "TRUNCATE consent_records" if is_postgres(database) else "DELETE FROM consent_records")
        assert source.changes_since(mark).person_ids is None
    finally:
        source.close()
