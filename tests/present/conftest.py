"""Fixtures for the audit report tests: a seeded SQLite state store (made once), configurations naming it, clean logging."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import structlog

from flagsync.adapters.state import SqlStateStore
from flagsync.core.pseudonym import Pseudonymizer
from tests.present.seed import Seeded, seed_history

HMAC_KEY = "present-test-key-0123456789"
FIRST_DAY = date(2026, 10, 5)  # a Monday
DAYS = 21


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put structlog and the standard library's logging back as they were after each test (the CLI configures both)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(HMAC_KEY.encode())


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Seeded]:
    """Three weeks of history written once through the store's own API: (state URL, what was written)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'flagsync-state.db'}"
    store = SqlStateStore(url, Pseudonymizer(HMAC_KEY.encode()))
    try:
        return url, seed_history(store, FIRST_DAY, DAYS)
    finally:
        store.close()


@pytest.fixture
def seeded(seeded_store: tuple[str, Seeded]) -> Seeded:
    return seeded_store[1]


def _write_config(tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration file naming the state store, in a working directory with no other configuration around."""
    for name in list(os.environ):
        if name.upper().startswith("FLAGSYNC_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = tmp_path / "flagsync.toml"
    path.write_text(
        f'[state]\nurl = "{state_url}"\n\n[audit]\nhmac_key = "{HMAC_KEY}"\n\n[log]\nformat = "json"\n', encoding="utf-8"
    )
    return path


@pytest.fixture
def config(tmp_path: Path, seeded_store: tuple[str, Seeded], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration naming the seeded state store (which the tests only read)."""
    return _write_config(tmp_path, seeded_store[0], monkeypatch)


@pytest.fixture
def empty_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration naming a state store with nothing in it yet."""
    return _write_config(tmp_path, f"sqlite:///{tmp_path / 'state' / 'flagsync-state.db'}", monkeypatch)
