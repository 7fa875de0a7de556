"""Real headless Chromium for the browser tests: Debian's `chromium`, driven by Playwright; skip on a laptop, fail in CI.

Playwright never downloads a browser here: it is pointed at the system's Chromium, started with a fresh profile and
with every background network feature off, so a test's page can reach nothing but the mock.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def unavailable(reason: str) -> NoReturn:
    """Skip, unless CI_REQUIRE_BROWSER is set (scripts/test sets it): then a missing browser fails the run."""
    if os.environ.get("CI_REQUIRE_BROWSER"):
        pytest.fail(reason + " and CI_REQUIRE_BROWSER is set")
    pytest.skip(reason + " (scripts/test installs Debian's chromium when it can)")


def chromium_path() -> str:
    """The system Chromium's path, or skip/fail as `unavailable` says."""
    if CHROMIUM is None:
        unavailable("chromium is not on PATH")
    return CHROMIUM
