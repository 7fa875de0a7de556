"""Exit codes a script can rely on: `plan` and `sync --dry-run` agree, and a bad command line has a code of its own.

Regression tests for issue 10: with removals held `plan` exited 0 and `sync --dry-run` 4, though the
README says a dry run is "as plan"; `plan --bogus` exited 2, which means "changes pending".
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, ago, flagsync_command, record

pytestmark = pytest.mark.e2e


def _flag_many(e2e: E2E, people: list[str]) -> None:
    e2e.seed_people(*people)
    e2e.add_records(*(record(p) for p in people))
    e2e.flagsync("sync")
    assert e2e.flagged() == set(people)


def test_plan_and_dry_run_agree_when_removals_would_be_held(e2e: E2E) -> None:
    """With a mass withdrawal, both say 4 (removals held by the guard) and neither removes anything."""
    people = [f"P5{n:03d}" for n in range(60)]
    _flag_many(e2e, people)
    e2e.add_records(*(record(p, "withdrawn", recorded_at=ago(minutes=5)) for p in people))
    plan = e2e.flagsync("plan", expect=None)
    dry = e2e.flagsync("sync", "--dry-run", expect=None)
    assert (plan.code, dry.code) == (4, 4), plan.describe() + dry.describe()
    assert e2e.flagged() == set(people)


def test_plan_and_dry_run_agree_on_pending_changes_and_on_nothing_to_do(e2e: E2E) -> None:
    """A pending change: both 2; once converged: both 0."""
    _flag_many(e2e, ["P5101", "P5102"])
    e2e.add_records(record("P5101", "withdrawn", recorded_at=ago(minutes=5)))
    assert (e2e.flagsync("plan", expect=None).code, e2e.flagsync("sync", "--dry-run", expect=None).code) == (2, 2)
    e2e.flagsync("sync")
    assert (e2e.flagsync("plan", expect=None).code, e2e.flagsync("sync", "--dry-run", expect=None).code) == (0, 0)


@pytest.mark.parametrize("argv", [["plan", "--bogus"], ["sync", "--person"], ["nonsense"], []])
def test_a_bad_command_line_exits_64(tmp_path: Path, argv: list[str]) -> None:
    """An unknown option, a missing value or command exits 64 (EX_USAGE), which no command uses for a result."""
    done = subprocess.run([*flagsync_command(), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 64, done.stderr
    assert "usage: flagsync" in done.stderr
