"""The state store's files are private: database, WAL, shared memory and run lock 0600, a new directory 0700.

Regression test for issue 6: they were created 0644 and 0755 (world-readable pseudonyms and One ids).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.state import SqlStateStore
from flagsync.core.model import Flag, RunTrigger
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.ports import AuditEntry


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask 022, under which files come out world-readable unless created otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("loose_umask")
def test_state_files_and_their_new_directory_are_private(tmp_path: Path) -> None:
    """After a run's worth of writes under umask 022, every state file is 0600 and the directory flagsync made is 0700."""
    state_dir = tmp_path / "new" / "state"
    url = f"sqlite:///{state_dir / 'flagsync-state.db'}"
    store = SqlStateStore(url, Pseudonymizer(b"mode-test-key-0123456"))
    with RunLock(url, wait_seconds=0):
        run_id = store.start_run(RunTrigger.OPERATOR, datetime.now(UTC))
        store.mark_pending(Flag("INV-1", "P1", 1), datetime.now(UTC))
        store.record_events(run_id, [AuditEntry("add", "P2", "ok")], datetime.now(UTC))
        files = sorted(state_dir.iterdir())
        names = {p.name for p in files}
        assert {"flagsync-state.db", "flagsync-state.db-wal", "flagsync-state.db-shm", "flagsync-state.db.lock"} <= names
        for path in files:
            assert _mode(path) == 0o600, f"{path.name} is {oct(_mode(path))}"
    store.close()
    assert _mode(state_dir) == 0o700


@pytest.mark.usefixtures("loose_umask")
def test_an_existing_directory_is_left_as_it_is(tmp_path: Path) -> None:
    """flagsync does not change the mode of a directory an operator made; the files it creates there are still 0600."""
    tmp_path.chmod(0o750)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = SqlStateStore(url, Pseudonymizer(b"mode-test-key-0123456"))
    store.start_run(RunTrigger.OPERATOR, datetime.now(UTC))
    store.close()
    assert _mode(tmp_path) == 0o750
    assert _mode(tmp_path / "state.db") == 0o600
