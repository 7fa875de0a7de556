"""Fixtures for the consent source tests: sample rows with canary personal data, SQL tables and CSV files."""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from flagsync.core import records
from flagsync.core.model import CONTRACT_COLUMNS
from flagsync.ports import Changes
from tests.postgres import unavailable as postgres_unavailable

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"

#: The fixed "now" of every source test.
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

#: Personal data a real source holds beside the contract columns; none of it may ever be read.
CANARY = {
    "name": "CANARY-NAME-Xq7Zr",
    "address": "CANARY-ADDRESS-9 Lilac Row",
    "dob": "CANARY-DOB-2014-03-09",
    "notes": "CANARY-NOTES-speech therapy",
}

CONTRACT = CONTRACT_COLUMNS

RowFactory = Callable[..., dict[str, str | None]]


@pytest.fixture(autouse=True)
def _fresh_row_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's parse_record starts with a new parser, so no test leans on timestamps another test cached."""
    monkeypatch.setattr(records, "_last_parser", None)


@pytest.fixture
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement any engine sends while the test runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:  # (conn, cursor, statement, parameters, context, executemany)
        seen.append((args[2], args[3]))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", capture)


def make_row(record_id: str, person_id: str | None = None, **overrides: str | None) -> dict[str, str | None]:
    """A valid granted row (text values, as a CSV or an untyped table holds them) with canary columns."""
    row: dict[str, str | None] = {
        "record_id": record_id,
        "person_id": person_id if person_id is not None else "P" + record_id.upper(),
        "decision": "granted",
        "informed": "yes",
        "consented_by": "parent",
        "recorded_at": "2025-06-01T09:30:00",
        "expires_at": "2026-12-31",
        "case_status": "open",
        "consent_version": "v2",
        "updated_at": "2025-06-01T09:30:00+00:00",
        **CANARY,
    }
    row.update(overrides)
    return row


def write_csv(path: Path, rows: Sequence[Mapping[str, str | None]], header: Sequence[str] | None = None) -> Path:
    """Write `rows` as a UTF-8 CSV with a header (all keys of the first row unless given)."""
    names = list(header) if header is not None else list(rows[0]) if rows else list(CONTRACT)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if row.get(name) is None else row.get(name) for name in names])
    return path


class Database:
    """A database to put consent tables in, on one backend."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, poolclass=NullPool)

    def create(
        self,
        rows: Sequence[Mapping[str, object]],
        *,
        table: str = "consent_records",
        columns: Sequence[str] | None = None,
        types: Mapping[str, sa.types.TypeEngine[object]] | None = None,
    ) -> sa.Table:
        """Create `table` with `columns` (default: the first row's keys; text unless typed) and insert `rows`."""
        names = list(columns) if columns is not None else list(rows[0])
        chosen = dict(types or {})
        metadata = sa.MetaData()
        created = sa.Table(table, metadata, *(sa.Column(name, chosen.get(name, sa.Text())) for name in names))
        metadata.create_all(self.engine)
        if rows:
            with self.engine.begin() as conn:
                conn.execute(created.insert(), [{name: row.get(name) for name in names} for row in rows])
        return created

    def execute(self, statement: str, **params: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(statement), params)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A uniquely named PostgreSQL database for this test session, dropped afterwards."""
    name = "flagsync_sources_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        postgres_unavailable()
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database on each supported backend (PostgreSQL: a fresh schema in the session's database)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'consent.db'}")
        db.execute("CREATE TABLE flagsync_placeholder (x INTEGER)")  # makes the file exist
        yield db
        db.engine.dispose()
        return
    yield from _fresh_postgres(request.getfixturevalue("pg_database"))


@pytest.fixture
def postgres(pg_database: str) -> Iterator[Database]:
    """An empty PostgreSQL schema, for behaviour only PostgreSQL has."""
    yield from _fresh_postgres(pg_database)


def _fresh_postgres(url: str) -> Iterator[Database]:
    db = Database(url)
    db.execute("DROP SCHEMA public CASCADE")
    db.execute("CREATE SCHEMA public")
    try:
        yield db
    finally:
        db.engine.dispose()


def eventually(poll: Callable[[], Changes], done: Callable[[Changes], bool], seconds: float = 15.0) -> Changes:
    """Poll until `done`: PostgreSQL's row counters reach readers once the writer's session has reported them."""
    deadline = time.monotonic() + seconds
    while True:
        changes = poll()
        if done(changes) or time.monotonic() > deadline:
            return changes
        time.sleep(0.1)
