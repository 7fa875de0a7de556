"""Fixtures for the state store and run lock tests: an SQLite file and a throw-away PostgreSQL database."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
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


#: The pseudonym key of the command-line tests (their configurations name it).
CLI_KEY = "state-cli-test-key-0123456789"


@pytest.fixture
def cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a configuration naming a state store (and keys), in a working directory with no other configuration about."""
    for name in list(os.environ):
        if name.upper().startswith("FLAGSYNC_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)

    def write(state_url: str, *, key: str = CLI_KEY, previous: Sequence[str] = (), name: str = "flagsync.toml") -> Path:
        path = tmp_path / name
        keys = ", ".join(f'"{k}"' for k in previous)
        path.write_text(
            f'[state]\nurl = "{state_url}"\n\n[audit]\nhmac_key = "{key}"\nprevious_hmac_keys = [{keys}]\n\n'
            '[log]\nformat = "json"\nlevel = "DEBUG"\n',
            encoding="utf-8",
        )
        return path

    return write
