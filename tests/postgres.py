"""PostgreSQL for tests: a throw-away database, and what to do when the server is not there (skip locally, fail in CI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def unavailable() -> NoReturn:
    """Skip, unless CI_REQUIRE_POSTGRES is set (scripts/test sets it): then a missing server fails the run."""
    message = "PostgreSQL is not reachable on 127.0.0.1:5432"
    if os.environ.get("CI_REQUIRE_POSTGRES"):
        pytest.fail(message + " and CI_REQUIRE_POSTGRES is set")
    pytest.skip(message)


@contextmanager
def temporary_database(prefix: str = "flagsync_test_") -> Iterator[str]:
    """The URL of a uniquely named, empty PostgreSQL database, dropped (connections and all) afterwards."""
    name = prefix + uuid.uuid4().hex[:12]
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        unavailable()
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
