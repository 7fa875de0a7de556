"""The SQL consent source against SQLite and a real PostgreSQL: reading, privacy, errors, streaming and change detection."""

from __future__ import annotations

import re
import sqlite3
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from flagsync.adapters.sql import SqlConsentSource
from flagsync.core.model import ConsentRecord, Decision, QuarantinedRecord, QuarantineReason, SourceItem
from flagsync.errors import ConfigError, SourceError

from .conftest import CANARY, CONTRACT, NOW, Database, eventually, make_row

R = QuarantineReason


def source_for(db: Database, table: str = "consent_records", columns: dict[str, str] | None = None) -> SqlConsentSource:
    return SqlConsentSource(db.url, table, columns, None)


def read_all(source: SqlConsentSource) -> list[SourceItem]:
    try:
        return list(source.read_all(NOW))
    finally:
        source.close()


def by_id(items: list[SourceItem]) -> dict[str | None, SourceItem]:
    return {item.record_id: item for item in items}


@pytest.fixture
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement any engine sends while the test runs, with the DBAPI cursor used."""
    seen: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:  # (conn, cursor, statement, parameters, context, executemany)
        seen.append((args[2], args[1]))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", capture)


def test_reads_valid_records(database: Database) -> None:
    """Valid rows come back as consent records with UTC timestamps, unmatched ones without a person id."""
    database.create([make_row("r1", "P1"), make_row("r2", "", decision="withdrawn", informed=None, consented_by=None)])
    items = by_id(read_all(source_for(database)))
    first = items["r1"]
    assert isinstance(first, ConsentRecord)
    assert (first.person_id, first.decision, first.recorded_at) == (
        "P1",
        Decision.GRANTED,
        datetime(2025, 6, 1, 8, 30, tzinfo=UTC),
    )
    second = items["r2"]
    assert isinstance(second, ConsentRecord)
    assert (second.person_id, second.decision) == (None, Decision.WITHDRAWN)


MALFORMED = [
    pytest.param({"decision": None}, R.MISSING_FIELD, "decision", id="missing-field"),
    pytest.param({"decision": "maybe"}, R.BAD_DECISION, "decision", id="bad-decision"),
    pytest.param({"informed": "perhaps"}, R.BAD_BOOLEAN, "informed", id="bad-boolean"),
    pytest.param({"consented_by": "neighbour"}, R.BAD_CONSENTED_BY, "consented_by", id="bad-consented-by"),
    pytest.param({"case_status": "pending"}, R.BAD_CASE_STATUS, "case_status", id="bad-case-status"),
    pytest.param({"recorded_at": "yesterday"}, R.BAD_TIMESTAMP, "recorded_at", id="bad-timestamp"),
    pytest.param({"recorded_at": "2026-02-01T00:00:00Z"}, R.FUTURE_TIMESTAMP, "recorded_at", id="future-timestamp"),
    pytest.param({"person_id": "P 1;DROP"}, R.BAD_PERSON_ID, "person_id", id="bad-person-id"),
    pytest.param({"consent_version": "v" * 65}, R.FIELD_TOO_LONG, "consent_version", id="field-too-long"),
]


@pytest.mark.parametrize(("overrides", "reason", "field"), MALFORMED)
def test_malformed_record_is_quarantined_alone(
    database: Database, overrides: dict[str, str | None], reason: R, field: str
) -> None:
    """A record breaking one rule is quarantined with its reason code; the other records read normally."""
    database.create([make_row("good1", "P1"), {**make_row("bad", "P2"), **overrides}, make_row("good2", "P3")])
    items = by_id(read_all(source_for(database)))
    bad = items["bad"]
    assert isinstance(bad, QuarantinedRecord)
    assert (bad.reason, bad.field) == (reason, field)
    assert bad.person_id == (None if reason is R.BAD_PERSON_ID else "P2")
    assert all(isinstance(items[key], ConsentRecord) for key in ("good1", "good2"))
    assert len(items) == 3


def test_every_occurrence_of_a_duplicate_record_id_is_quarantined(database: Database) -> None:
    """All rows sharing a record id are quarantined (keeping their persons); the other records are unaffected."""
    database.create([make_row("dup", "P1"), make_row("ok", "P2"), make_row("dup", "P3", decision="refused")])
    items = read_all(source_for(database))
    quarantined = sorted((item.person_id or "", item.reason.value) for item in items if isinstance(item, QuarantinedRecord))
    assert quarantined == [("P1", "DUPLICATE_RECORD_ID"), ("P3", "DUPLICATE_RECORD_ID")]
    assert [item.record_id for item in items if isinstance(item, ConsentRecord)] == ["ok"]


def test_too_long_record_id_is_quarantined_without_it(database: Database) -> None:
    """A record id over 128 characters is quarantined as FIELD_TOO_LONG and not kept."""
    database.create([make_row("x" * 129, "P1"), make_row("ok", "P2")])
    items = read_all(source_for(database))
    assert QuarantinedRecord(None, "P1", R.FIELD_TOO_LONG, "record_id") in items
    assert any(isinstance(item, ConsentRecord) and item.record_id == "ok" for item in items)


def test_read_person_returns_only_that_persons_records(database: Database) -> None:
    """read_person finds the person's records (padding ignored), duplicates included, and nobody else's."""
    database.create(
        [
            make_row("r1", "P1"),
            make_row("r2", " P1 ", decision="withdrawn"),
            make_row("r3", "P2"),
            make_row("r3", "P1", decision="refused"),  # shares a record id with P2's record
            make_row("r4", "P1x"),
        ]
    )
    source = source_for(database)
    try:
        items = by_id(list(source.read_person("P1", NOW)))
        assert list(source.read_person("not valid!", NOW)) == []
    finally:
        source.close()
    assert set(items) == {"r1", "r2", "r3"}
    assert items["r3"] == QuarantinedRecord("r3", "P1", R.DUPLICATE_RECORD_ID, "record_id")


def test_column_mapping_renames_source_columns(database: Database) -> None:
    """A mapping reads renamed columns (matched exactly or case-insensitively) under the contract's names."""
    mapping = {"record_id": "form_ref", "person_id": "one_id", "decision": "Outcome", "case_status": "CASE"}
    renamed = [{mapping.get(name, name): value for name, value in make_row("r1", "P1").items()}]
    database.create(renamed, columns=[*(mapping.get(name, name) for name in CONTRACT), "name"])
    items = read_all(source_for(database, columns={**mapping, "case_status": "case"}))
    assert len(items) == 1
    assert isinstance(items[0], ConsentRecord)
    assert (items[0].record_id, items[0].person_id, items[0].decision) == ("r1", "P1", Decision.GRANTED)


def test_optional_columns_may_be_absent(database: Database) -> None:
    """A table without expires_at, consent_version and updated_at reads those as None."""
    columns = [name for name in CONTRACT if name not in ("expires_at", "consent_version", "updated_at")]
    database.create([make_row("r1", "P1")], columns=columns)
    (item,) = read_all(source_for(database))
    assert isinstance(item, ConsentRecord)
    assert (item.expires_at, item.consent_version, item.updated_at) == (None, None, None)


def test_native_column_types_are_understood(database: Database) -> None:
    """Database booleans, timestamps with time zone and dates parse like their text forms."""
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "informed": sa.Boolean(),
        "recorded_at": sa.DateTime(timezone=True),
        "expires_at": sa.Date(),
        "updated_at": sa.DateTime(timezone=True),
    }
    row: dict[str, object] = {
        **make_row("r1", "P1"),
        "informed": True,
        "recorded_at": datetime(2025, 1, 10, 9, 0, tzinfo=UTC),
        "expires_at": date(2026, 12, 31),
        "updated_at": datetime(2025, 1, 10, 9, 0, tzinfo=UTC),
    }
    database.create([row], columns=CONTRACT, types=types)
    (item,) = read_all(source_for(database))
    assert isinstance(item, ConsentRecord)
    assert item.informed is True
    assert item.recorded_at == datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
    assert item.expires_at == datetime(2027, 1, 1, 0, 0, tzinfo=UTC)


def test_personal_data_columns_are_never_selected(database: Database, statements: list[tuple[str, Any]]) -> None:
    """Every statement against the table names only contract columns (never *, name, address, dob or notes)."""
    database.create([make_row("r1", "P1"), make_row("r1", "P2"), make_row("r2", "P3")])
    statements.clear()
    source = source_for(database)
    try:
        items = [*source.read_all(NOW), *source.read_person("P1", NOW)]
        source.changes_since(source.changes_since(None).watermark)
    finally:
        source.close()
    assert not any(value in repr(items) for value in CANARY.values())
    queries = [text for text, _ in statements if "consent_records" in text and not text.lstrip().upper().startswith("PRAGMA")]
    assert queries
    for text in queries:
        assert not re.search(r"\b(name|address|dob|notes)\b", text, re.IGNORECASE), text
        assert "*" not in text.replace("count(*)", ""), text


def test_unmapped_table_without_updated_at_is_fingerprinted_on_mapped_columns_only(
    database: Database, statements: list[tuple[str, Any]]
) -> None:
    """The fingerprint used when there is no updated_at also selects only contract columns."""
    columns = [*[name for name in CONTRACT if name != "updated_at"], "notes"]
    database.create([make_row("r1", "P1")], columns=columns)
    statements.clear()
    source = source_for(database)
    try:
        source.changes_since(None)
    finally:
        source.close()
    queries = [text for text, _ in statements if "consent_records" in text and not text.lstrip().upper().startswith("PRAGMA")]
    assert queries
    assert not any(re.search(r"\bnotes\b", text) for text in queries)


# ---------------------------------------------------------------------------------------------
# Errors


def assert_safe(error: SourceError, *secrets: str) -> None:
    message = str(error)
    for secret in (*secrets, *CANARY.values()):
        assert secret not in message
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_missing_table_is_a_source_error(database: Database) -> None:
    """A missing table fails the read with a message naming the table."""
    with pytest.raises(SourceError, match="table 'nowhere' not found") as caught:
        read_all(source_for(database, table="nowhere"))
    assert_safe(caught.value)


def test_missing_required_column_is_a_source_error(database: Database) -> None:
    """A required column absent from the table fails the read, naming the column."""
    database.create([make_row("r1", "P1")], columns=[name for name in CONTRACT if name != "decision"])
    with pytest.raises(SourceError, match="column 'decision'") as caught:
        read_all(source_for(database))
    assert_safe(caught.value)


@pytest.mark.postgres
def test_database_error_does_not_leak_values(postgres: Database) -> None:
    """A driver error whose text would quote the person id becomes a SourceError naming only the failure."""
    # The view's cast fails on the row's value, and PostgreSQL's message quotes that value.
    postgres.create([make_row("r1", "Pcanary77")], table="consent_raw", columns=CONTRACT)
    others = ", ".join(name for name in CONTRACT if name != "person_id")
    postgres.execute(f"CREATE VIEW consent_records AS SELECT {others}, person_id::integer AS person_id FROM consent_raw")  # noqa: S608 - fixed column names
    source = source_for(postgres)
    try:
        with pytest.raises(SourceError, match="cannot read") as caught:
            list(source.read_all(NOW))
    finally:
        source.close()
    assert_safe(caught.value, "Pcanary77")


def test_unreachable_database_is_a_source_error_without_password() -> None:
    """A database that does not answer fails the read; the message masks the password."""
    source = SqlConsentSource("postgresql://flagsync:s3cret-pw@127.0.0.1:1/consent", "consent_records")
    with pytest.raises(SourceError, match="cannot connect") as caught:
        read_all(source)
    assert_safe(caught.value, "s3cret-pw")


def test_missing_sqlite_file_is_a_source_error_and_not_created(tmp_path: Path) -> None:
    """A missing SQLite file fails the read instead of being created empty."""
    path = tmp_path / "absent.db"
    with pytest.raises(SourceError, match="does not exist"):
        read_all(SqlConsentSource(f"sqlite:///{path}", "consent_records"))
    assert not path.exists()


def test_nothing_connects_at_construction() -> None:
    """Building the source opens no connection, so an unreachable database fails only when read."""
    SqlConsentSource("postgresql+psycopg://u:pw@127.0.0.1:1/x", "t").close()


@pytest.mark.parametrize(
    ("url", "columns", "match"),
    [
        ("not a url", None, "not a valid"),
        ("nosuchdialect://x/y", None, "driver"),
    ],
)
def test_bad_configuration_is_a_config_error(url: str, columns: dict[str, str] | None, match: str) -> None:
    """A bad URL or an unknown dialect (no driver installed) is rejected at construction."""
    with pytest.raises(ConfigError, match=match):
        SqlConsentSource(url, "consent_records", columns)


def test_describe_masks_the_password() -> None:
    """describe() names the table and database with the password masked."""
    source = SqlConsentSource("postgresql://flagsync:s3cret-pw@db.internal:5432/consent?sslmode=require", "consent.records")
    assert source.describe() == "sql table consent.records on postgresql+psycopg://flagsync:***@db.internal:5432/consent"
    source.close()


# ---------------------------------------------------------------------------------------------
# Streaming


def test_large_table_is_streamed_not_materialised(tmp_path: Path) -> None:
    """Reading 100,000 rows holds only a batch at a time: peak memory stays far below the whole table's."""
    path = tmp_path / "big.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE consent_records ({', '.join(CONTRACT)}, name)")
        row = make_row("x", "P1")
        values = [row[name] for name in CONTRACT]
        placeholders = ", ".join("?" * (len(CONTRACT) + 1))
        conn.executemany(
            f"INSERT INTO consent_records VALUES ({placeholders})",  # noqa: S608  # only placeholders are interpolated
            ([f"r{i:06d}", f"P{i:06d}", *values[2:], CANARY["name"]] for i in range(100_000)),
        )
    source = SqlConsentSource(f"sqlite:///{path}", "consent_records")
    tracemalloc.start()
    try:
        count = sum(1 for _ in source.read_all(NOW))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        source.close()
    assert count == 100_000
    # 100,000 parsed records held at once take well over 40 MB; streaming stays at a few MB.
    assert peak < 10 * 1024 * 1024


@pytest.mark.postgres
def test_postgresql_reads_through_a_server_side_cursor(postgres: Database, statements: list[tuple[str, Any]]) -> None:
    """On PostgreSQL the records query runs on a server-side (named) cursor, so rows arrive in batches."""
    postgres.create([make_row("r1", "P1")])
    read_all(source_for(postgres))
    cursors = [
        type(cursor).__name__ for text, cursor in statements if "consent_records" in text and "flagsync_duplicate_of" in text
    ]
    assert cursors == ["ServerCursor"]


# ---------------------------------------------------------------------------------------------
# Change detection


def test_changes_by_updated_at(database: Database) -> None:
    """With updated_at: first poll asks for a full reconcile, then only the people of changed rows come back."""
    table = database.create([make_row("r1", "P1"), make_row("r2", "P2")])
    source = source_for(database)
    try:
        first = source.changes_since(None)
        assert first.person_ids is None and first.watermark
        assert source.changes_since(first.watermark).person_ids == frozenset()
        with database.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.record_id == "r2")
                .values(decision="withdrawn", updated_at="2025-07-01T10:00:00+00:00")
            )
            conn.execute(table.insert().values(**make_row("r3", "P3", updated_at="2025-07-02T10:00:00+00:00")))
        second = source.changes_since(first.watermark)
        assert second.person_ids == frozenset({"P2", "P3"})
        assert source.changes_since(second.watermark) == type(second)(frozenset(), second.watermark)
    finally:
        source.close()


def test_deleted_rows_or_unknown_watermark_ask_for_a_full_reconcile(database: Database) -> None:
    """Fewer rows than at the watermark, or a watermark from elsewhere, means a full reconcile."""
    table = database.create([make_row("r1", "P1"), make_row("r2", "P2")])
    source = source_for(database)
    try:
        mark = source.changes_since(None).watermark
        assert source.changes_since("sha256:abc").person_ids is None
        assert source.changes_since("{not json").person_ids is None
        with database.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.record_id == "r1"))
        assert source.changes_since(mark).person_ids is None
    finally:
        source.close()


def test_changes_by_fingerprint_without_updated_at(database: Database) -> None:
    """Without updated_at: an unchanged table reports nobody, an edit names its person (per-person digests)."""
    table = database.create([make_row("r1", "P1"), make_row("r2", "P2")], columns=[n for n in CONTRACT if n != "updated_at"])
    source = source_for(database)
    try:
        first = source.changes_since(None)
        assert first.person_ids is None
        assert source.changes_since(first.watermark).person_ids == frozenset()
        with database.engine.begin() as conn:
            conn.execute(table.update().where(table.c.record_id == "r1").values(decision="refused"))
        changed = eventually(lambda: source.changes_since(first.watermark), lambda c: c.watermark != first.watermark)
        assert changed.person_ids == frozenset({"P1"}) and changed.watermark != first.watermark
    finally:
        source.close()


def test_changes_with_native_timestamps(database: Database) -> None:
    """A timestamp-typed updated_at column round-trips through the watermark."""
    types: dict[str, sa.types.TypeEngine[Any]] = {"updated_at": sa.DateTime(timezone=True)}
    old = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    table = database.create([{**make_row("r1", "P1"), "updated_at": old}], columns=CONTRACT, types=types)
    source = source_for(database)
    try:
        mark = source.changes_since(None).watermark
        with database.engine.begin() as conn:
            newer = {**make_row("r2", "P2"), "updated_at": datetime(2025, 6, 2, tzinfo=UTC)}
            conn.execute(table.insert().values(**{name: newer[name] for name in CONTRACT}))
        assert source.changes_since(mark).person_ids == frozenset({"P2"})
    finally:
        source.close()
