"""The runbook's backup and restore, done for real: pending and held removals and the audit chain survive (SQLite, PostgreSQL)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from flagsync.adapters.state import SqlStateStore
from flagsync.core.model import Flag, RunOutcome, RunTrigger
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.ports import AuditEntry
from tests.postgres import temporary_database
from tests.state.release_0_1 import T0

KEY = Pseudonymizer(b"backup-trial-key-0123456789")


def _fill(url: str) -> None:
    store = SqlStateStore(url, KEY)
    run_id = store.start_run(RunTrigger.SCHEDULED_FULL, T0)
    store.record_events(run_id, [AuditEntry("add", f"P{i}", "ok") for i in range(5)], T0)
    store.record_events(run_id, [AuditEntry("remove", "P9", "failed", "SERVER_ERROR")], T0 + timedelta(seconds=1))
    store.mark_pending(Flag("INV-000042", "P9", 1), T0)
    store.mark_pending(Flag("INV-000043", "P8", 1), T0, held=True)
    store.finish_run(run_id, RunOutcome.CHANGES_FAILED, {"adds": 5, "failed": 1}, T0)
    store.close()


def _assert_restored(url: str) -> None:
    store = SqlStateStore(url, KEY, read_only=True)
    try:
        assert [(p.involvement_id, p.held) for p in store.pending_removals()] == [("INV-000042", False), ("INV-000043", True)]
        check = store.verify_audit()
        assert (check.intact, check.events, check.last_id) == (True, 6, 6)
    finally:
        store.close()
    writer = SqlStateStore(url, KEY)  # and the restored chain takes new events
    writer.record_events("after", [AuditEntry("add", "P10", "ok")], T0 + timedelta(days=1))
    assert writer.verify_audit().last_id == 7
    writer.close()


def test_sqlite_backup_api_restore_keeps_removals_and_the_chain(tmp_path: Path) -> None:
    """A backup taken with SQLite's backup API (as the runbook's one-liner) restores pending removals and an intact chain."""
    live = tmp_path / "state" / "flagsync-state.db"
    url = f"sqlite:///{live}"
    _fill(url)
    backup = tmp_path / "backup.db"
    source, target = sqlite3.connect(live), sqlite3.connect(backup)
    source.backup(target)
    source.close(), target.close()

    for lost in live.parent.glob("flagsync-state.db*"):
        lost.unlink()  # the disaster
    shutil.copyfile(backup, live)
    live.chmod(0o600)

    _assert_restored(url)


@pytest.mark.postgres
def test_pg_dump_and_psql_restore_keeps_removals_and_the_chain(pg_url: str) -> None:
    """A plain pg_dump restored with psql into a new database keeps pending removals and an intact chain."""
    for tool in ("pg_dump", "psql"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (Debian's postgresql-client)")
    _fill(pg_url)
    source = make_url(pg_url)
    dump = subprocess.run(
        ["pg_dump", "--host", "127.0.0.1", "--username", "postgres", "--no-owner", "--no-privileges", str(source.database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    with temporary_database("flagsync_restore_") as restored:
        target = make_url(restored)
        subprocess.run(
            ["psql", "--host", "127.0.0.1", "--username", "postgres", "--set", "ON_ERROR_STOP=1", "--single-transaction",
             "--quiet", str(target.database)],
            input=dump,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )  # fmt: skip
        _assert_restored(restored)
