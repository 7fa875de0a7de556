"""Fixtures for the state store and run lock tests: an SQLite file and a throw-away PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flagsync.adapters.state import SqlStateStore
from flagsync.core.pseudonym import Pseudonymizer
from tests.postgres import temporary_database

KEY = b"test-pseudonym-key"


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(KEY)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A uniquely named PostgreSQL database, dropped (connections and all) afterwards."""
    with temporary_database("flagsync_state_") as url:
        yield url


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
