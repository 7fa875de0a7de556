"""What a test does when the PostgreSQL server is not there: skip on a laptop, fail in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def unavailable() -> NoReturn:
    """Skip, unless CI_REQUIRE_POSTGRES is set (scripts/test sets it): then a missing server fails the run."""
    message = "PostgreSQL is not reachable on 127.0.0.1:5432"
    if os.environ.get("CI_REQUIRE_POSTGRES"):
        pytest.fail(message + " and CI_REQUIRE_POSTGRES is set")
    pytest.skip(message)
