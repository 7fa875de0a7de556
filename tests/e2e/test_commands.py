"""End-to-end checks of the command line itself: every command's --help, and the guided demo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flagsync.demo_data import SAMPLE_RECORDS
from tests.e2e.conftest import flagsync_command

pytestmark = pytest.mark.e2e

COMMANDS = ["plan", "sync", "daemon", "status", "audit", "check", "demo"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*flagsync_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_exits_zero(tmp_path: Path, command: str | None) -> None:
    """`flagsync --help` and `flagsync COMMAND --help` print usage and exit 0 without any configuration."""
    done = _run(*([command] if command else []), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: flagsync")
    if command is None:
        assert all(name in done.stdout for name in COMMANDS)
    if command in ("plan", "sync"):
        assert "Exit 0" in done.stdout


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    """`flagsync demo` exits 0 and shows the plan, what One holds, a quiet second run and no personal data sent."""
    done = _run("demo", "--workdir", str(tmp_path / "demo"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Step 1: flagsync plan" in out and "Plan: " in out
    assert "What One now shows" in out
    assert "Second run: 0 added, 0 removed" in out
    assert "Personal data found in any request: none" in out
    personal = {str(value) for row in SAMPLE_RECORDS for value in row[8:]}
    assert not [p for p in personal if p in out + done.stderr]
    state = (tmp_path / "demo" / "demo-state.db").read_bytes()
    ids = {str(row[0]) for row in SAMPLE_RECORDS} | {str(row[1]) for row in SAMPLE_RECORDS if row[1]}
    assert not [i for i in ids | personal if i.encode() in state]
