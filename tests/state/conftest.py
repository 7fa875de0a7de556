"""Fixtures for the state store and run lock tests: an SQLite file and a throw-away PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from flagsync.adapters.sql_state import SqlStateStore
from flagsync.core.pseudonym import Pseudonymizer
from tests.postgres import unavailable as postgres_unavailable

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"

KEY = b"test-pseudonym-key"


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(KEY)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A uniquely named PostgreSQL database, dropped (connections and all) afterwards."""
    name = "flagsync_state_" + uuid.uuid4().hex[:12]
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        postgres_unavailable()
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'flagsync-state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty state store, on each supported backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def store(state_url: str, pseudonymizer: Pseudonymizer) -> Iterator[SqlStateStore]:
    state = SqlStateStore(state_url, pseudonymizer)
    try:
        yield state
    finally:
        state.close()
