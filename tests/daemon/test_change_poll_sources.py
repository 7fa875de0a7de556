"""The daemon's fast path over real sources (SQLite, CSV): a withdrawal is synced for its person alone, One is never listed."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from flagsync.adapters.csv import CsvConsentSource
from flagsync.adapters.memory_gateway import InMemoryFlagGateway
from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.sql import SqlConsentSource
from flagsync.adapters.state import SqlStateStore
from flagsync.bootstrap import App
from flagsync.core.model import Rules, RunTrigger
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.daemon import Daemon
from flagsync.metrics import Metrics
from flagsync.service import SyncService
from flagsync.settings import DaemonSettings, Settings, SyncSettings
from tests.sources.conftest import CONTRACT, make_row, write_csv

PEOPLE = [f"P{n}" for n in range(1, 6)]
INSERT = "INSERT INTO consent_records VALUES (" + ", ".join("?" * (len(CONTRACT) + 1)) + ")"  # noqa: S608 - placeholders only


class Consent:
    """A consent source of one kind, with a way to add a withdrawal to it."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.rows = [make_row(f"r{n}", person) for n, person in enumerate(PEOPLE, 1)]
        if kind == "csv":
            self.path = write_csv(directory / "consent.csv", self.rows)
            self.source: SqlConsentSource | CsvConsentSource = CsvConsentSource(self.path)
            return
        self.path = directory / "consent.db"
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            db.execute(f"CREATE TABLE consent_records ({', '.join(CONTRACT)}, notes)")
            db.execute("CREATE INDEX consent_records_person_id ON consent_records (person_id)")
            db.execute("CREATE INDEX consent_records_updated_at ON consent_records (updated_at)")
            db.executemany(INSERT, map(self._values, self.rows))
            db.commit()
        self.source = SqlConsentSource(f"sqlite:///{self.path}", "consent_records")

    @staticmethod
    def _values(row: dict[str, str | None]) -> tuple[str | None, ...]:
        return (*(row[name] for name in CONTRACT), row["notes"])

    def withdraw(self, person: str, record: str) -> None:
        row = make_row(record, person, decision="withdrawn", informed=None, consented_by=None, recorded_at="2025-07-01T09:00:00")
        row["updated_at"] = "2025-07-01T09:00:00+00:00"
        self.rows.append(row)
        if self.kind == "csv":
            write_csv(self.path, self.rows)
            return
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            db.execute(INSERT, self._values(row))
            db.commit()


Running = tuple[Daemon, Consent, InMemoryFlagGateway, SqlStateStore]


@pytest.fixture(params=["sqlite", "csv"])
def running(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Daemon, Consent, InMemoryFlagGateway, SqlStateStore]]:
    consent = Consent(request.param, tmp_path)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = Settings(
        sync=SyncSettings(full_reconcile_interval=3600), daemon=DaemonSettings(http_port=0, http_host="127.0.0.1")
    )
    pseudonymizer = Pseudonymizer(b"daemon-test-key-0123")
    one = InMemoryFlagGateway(any_person=True)
    state = SqlStateStore(url, pseudonymizer)
    service = SyncService(
        source=consent.source, gateway=one, state=state, rules=Rules(), lock=lambda: RunLock(url, wait_seconds=0)
    )
    app = App(
        settings, pseudonymizer, consent.source, one, state, Metrics(), service,
        lambda: RunLock(url, wait_seconds=0), RunLock(url, wait_seconds=0, role="leader"),
    )  # fmt: skip
    daemon = Daemon(app)
    yield daemon, consent, one, state
    if isinstance(consent.source, SqlConsentSource):
        consent.source.close()
    state.close()


def test_the_default_poll_interval_is_one_second() -> None:
    """The default change poll is frequent enough for withdrawal p95 <= 2 s (benchmarks/bench_withdrawal.py measures it)."""
    assert SyncSettings().change_poll_interval == 1.0


def test_a_withdrawal_is_synced_for_its_person_without_listing_one(running: Running) -> None:
    """After the start-up reconcile, idle polls never call One; a withdrawal costs one person lookup and one removal."""
    daemon, consent, one, state = running
    daemon.change_poll()  # takes the lead: the start-up full reconcile
    assert sorted(flag.person_id for flag in one.flags()) == PEOPLE
    assert one.calls["list_flags"] == 1
    one.calls.clear()
    for _ in range(3):
        daemon.change_poll()
    assert not one.calls
    consent.withdraw("P3", "w3")
    daemon.change_poll()
    assert dict(one.calls) == {"person_flags": 1, "remove_flag": 1}
    assert sorted(flag.person_id for flag in one.flags()) == [p for p in PEOPLE if p != "P3"]
    assert state.recent_runs(1)[0].trigger is RunTrigger.CHANGE_POLL
    one.calls.clear()
    daemon.change_poll()
    assert not one.calls  # the watermark moved past the withdrawal
