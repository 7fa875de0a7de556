"""Alembic migrations of the state store: a store made by flagsync 0.1 upgrades with every row kept, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, inspect, text
from sqlalchemy.exc import IntegrityError

from flagsync.adapters.state import SqlStateStore
from flagsync.adapters.state.migrate import current_revision, schema_version, upgrade
from flagsync.adapters.state.schema import HEAD_REVISION, SCHEMA_VERSION
from flagsync.cli import main
from flagsync.core.model import Flag, Refusal, RunOutcome, RunTrigger
from flagsync.core.pseudonym import Keyring, Pseudonymizer
from flagsync.errors import StateError
from flagsync.ports import AuditEntry
from tests.postgres import temporary_database
from tests.state import release_0_1
from tests.state.conftest import CLI_KEY
from tests.state.release_0_1 import T0, make_release_0_1_store

KEY = Pseudonymizer(CLI_KEY.encode())


@contextmanager
def _connection(url: str) -> Iterator[Any]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> Any:
    with _connection(url) as conn:
        return conn.execute(text(sql)).scalar_one_or_none()


def _tables(url: str) -> set[str]:
    with _connection(url) as conn:
        return set(inspect(conn).get_table_names())


def test_an_empty_database_is_created_at_the_newest_revision(state_url: str) -> None:
    """The first write to an empty database creates every table at the head revision, stamped for Alembic and for 0.1."""
    store = SqlStateStore(state_url, KEY)
    store.start_run(RunTrigger.OPERATOR, T0)
    store.close()

    assert _scalar(state_url, "SELECT version_num FROM alembic_version") == HEAD_REVISION
    assert _scalar(state_url, "SELECT value FROM kv WHERE key = 'schema_version'") == SCHEMA_VERSION
    assert {"runs", "pending_removals", "audit_events", "report_rows", "kv", "audit_chain"} <= _tables(state_url)


def test_a_release_0_1_store_is_refused_until_migrated(state_url: str) -> None:
    """sync and the daemon (a writing store) refuse a 0.1 store with a message that says to run `flagsync migrate`."""
    make_release_0_1_store(state_url, KEY)
    store = SqlStateStore(state_url, KEY)

    with pytest.raises(StateError, match=r"schema revision 0001 .*run `flagsync migrate`") as caught:
        store.start_run(RunTrigger.OPERATOR, T0)
    store.close()

    assert "alembic_version" not in _tables(state_url)  # refusing changed nothing
    assert "password" not in str(caught.value)


def test_the_daemon_refuses_to_start_on_a_release_0_1_store(
    state_url: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flagsync daemon` on a 0.1 store exits 1 at start with the migrate message, before scheduling anything."""
    make_release_0_1_store(state_url, KEY)
    config = cli_config(state_url)
    monkeypatch.setenv("FLAGSYNC_ONE__BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FLAGSYNC_ONE__CLIENT_ID", "c")
    monkeypatch.setenv("FLAGSYNC_ONE__CLIENT_SECRET", "s-0123456789")

    assert main(["daemon", "--config", str(config)]) == 1

    assert "run `flagsync migrate`" in capsys.readouterr().err
    assert "alembic_version" not in _tables(state_url)


def test_read_only_commands_never_migrate(
    state_url: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` and `audit --verify` on a 0.1 store exit 1 with the migrate message and leave the schema as it was."""
    make_release_0_1_store(state_url, KEY)
    config = cli_config(state_url)

    assert main(["status", "--config", str(config)]) == 1
    assert main(["audit", "--verify", "--config", str(config)]) == 1

    assert capsys.readouterr().err.count("run `flagsync migrate`") == 2
    assert "alembic_version" not in _tables(state_url)
    assert _scalar(state_url, "SELECT value FROM kv WHERE key = 'schema_version'") == "1"


def test_migrate_keeps_every_row_and_the_new_features_work(
    state_url: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`flagsync migrate` upgrades a 0.1 store: every run, removal, event, report row the watermark survive; the chain works."""
    written = make_release_0_1_store(state_url, KEY)

    assert main(["migrate", "--config", str(cli_config(state_url))]) == 0
    assert f"schema revision 0001 -> {HEAD_REVISION}" in capsys.readouterr().out

    store = SqlStateStore(state_url, KEY)
    runs = sorted(store.recent_runs(100), key=lambda r: r.run_id)
    found_runs = [
        (r.run_id, r.trigger.value, r.started_at, r.finished_at, r.outcome.value if r.outcome else None, dict(r.counts))
        for r in runs
    ]
    assert found_runs == sorted(written.runs)
    assert [(p.involvement_id, p.person, p.since, p.attempts, p.held, p.key_id) for p in store.pending_removals()] == [
        (*p, KEY.key_id) for p in written.pending
    ]
    events = store.audit_events(None, None)
    assert [(e.event_id, e.at, e.run_id, e.action, e.person, e.outcome, e.reason, e.key_id) for e in events] == [
        (*e, KEY.key_id) for e in written.events
    ]
    assert [(r.kind, r.subject, r.reason, r.key_id) for r in store.report()] == [(*r, KEY.key_id) for r in written.report]
    assert store.get_watermark() == written.watermark

    # The old events were signed into the chain at migration; new ones follow them; a purge keeps it verifiable.
    check = store.verify_audit()
    assert (check.intact, check.events, check.first_id, check.last_id) == (True, len(written.events), 1, len(written.events))
    run_id = store.start_run(RunTrigger.OPERATOR, T0 + timedelta(days=9))
    store.record_events(run_id, [AuditEntry("add", "PNEW1", "ok"), AuditEntry("remove", "PNEW2", "ok")], T0 + timedelta(days=9))
    store.mark_pending(Flag("INV-000001", "PPEND1", 1), T0 + timedelta(days=9))
    store.finish_run(run_id, RunOutcome.CONVERGED, {"adds": 1}, T0 + timedelta(days=9))
    assert [e.event_id for e in store.audit_events(None, None)][-2:] == [len(written.events) + 1, len(written.events) + 2]
    assert store.pending_removals()[0].attempts == 2
    store.record_refusal("PREFUSED1", Refusal("PERSON_ARCHIVED", T0 + timedelta(days=10)))  # revision 0004's table
    assert store.refusals(T0 + timedelta(days=9))("PREFUSED1") == Refusal("PERSON_ARCHIVED", T0 + timedelta(days=10))
    assert store.purge_audit(T0 + timedelta(days=2)) == 8
    assert store.verify_audit().intact
    assert store.abandon_unfinished() == 1  # the run 0.1 left unfinished
    store.close()

    # An old row edited by hand after the migration is caught: the chain covers what was there before.
    with _connection(state_url) as conn:
        conn.execute(text("UPDATE audit_events SET outcome = 'ok' WHERE id = 11"))
    assert SqlStateStore(state_url, KEY).verify_audit().broken is not None

    assert main(["migrate", "--config", str(cli_config(state_url))]) == 0
    assert f"already at schema revision {HEAD_REVISION}" in capsys.readouterr().out


def test_a_migrated_store_refuses_what_release_0_1_would_write(state_url: str) -> None:
    """After migrating, kv says schema 3 (0.1 refuses all but 1) and a 0.1-style insert fails: 0.1 cannot write unchained rows."""
    make_release_0_1_store(state_url, KEY)
    SqlStateStore(state_url, KEY).migrate()

    assert _scalar(state_url, "SELECT value FROM kv WHERE key = 'schema_version'") != release_0_1.SCHEMA_VERSION
    with pytest.raises(IntegrityError), _connection(state_url) as conn:
        conn.execute(
            insert(release_0_1.audit_events).values(at=T0, day="2026-03-02", run_id="r", action="add", person=None, outcome="ok")
        )
    with pytest.raises(IntegrityError), _connection(state_url) as conn:
        conn.execute(
            insert(release_0_1.pending_removals).values(
                involvement_id="INV-9", person="p_0000000000000000", since=T0, attempts=1, held=False, updated_at=T0
            )
        )


def _describe(url: str) -> dict[str, Any]:
    """Tables, columns (type, nullability, key), indexes and kv rows of a store, for comparing two schemas."""
    with _connection(url) as conn:
        found = inspect(conn)
        described: dict[str, Any] = {}
        for table in sorted(set(found.get_table_names()) - {"alembic_version"}):
            columns = [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)]
            indexes = sorted((i["name"], tuple(i["column_names"])) for i in found.get_indexes(table))
            described[table] = (columns, found.get_pk_constraint(table)["constrained_columns"], indexes)
        described["kv rows"] = sorted(tuple(row) for row in conn.execute(text("SELECT key, value FROM kv")))
    return described


@contextmanager
def _second_database(state_url: str, tmp_path: Path) -> Iterator[str]:
    if state_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
    else:
        with temporary_database("flagsync_state_") as url:
            yield url


def test_the_revision_is_read_as_alembic_reads_it(state_url: str) -> None:
    """`current_revision` agrees with Alembic's MigrationContext: no table, each revision to the head; two rows are unknown."""
    from alembic.runtime.migration import MigrationContext  # the reference this test compares with

    def both() -> tuple[str | None, str | None]:
        with _connection(state_url) as conn:
            return current_revision(conn), MigrationContext.configure(conn).get_current_revision()

    if state_url.startswith("sqlite:///"):
        Path(state_url.removeprefix("sqlite:///")).parent.mkdir(exist_ok=True)
    assert both() == (None, None)
    for target in ("0001", "0002", "0003", HEAD_REVISION):
        with _connection(state_url) as conn:
            upgrade(conn, Keyring(KEY), target=target)
        assert both() == (target, target)
    with _connection(state_url) as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0002')"))
        assert current_revision(conn) == "unknown (several heads in alembic_version)"
        assert not schema_version(conn).known


def test_a_store_at_the_head_is_used_without_importing_alembic(tmp_path: Path) -> None:
    """Alembic is imported only to create or migrate a store: opening one at the head and writing a run does not."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = SqlStateStore(url, KEY)
    first.start_run(RunTrigger.OPERATOR, T0)
    first.close()
    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from flagsync.adapters.state import SqlStateStore\n"
        "from flagsync.core.model import RunTrigger\n"
        "from flagsync.core.pseudonym import Pseudonymizer\n"
        f"store = SqlStateStore({url!r}, Pseudonymizer({CLI_KEY.encode()!r}))\n"
        "store.check_schema()\n"
        "store.start_run(RunTrigger.OPERATOR, datetime.now(UTC))\n"
        "store.close()\n"
        "assert not [name for name in sys.modules if name.split('.')[0] in ('alembic', 'mako')], 'alembic was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_revision_0001_is_exactly_the_release_0_1_schema(state_url: str, tmp_path: Path) -> None:
    """Revision 0001 builds the same tables, columns, keys, indexes and kv row as flagsync 0.1's create_all did."""
    make_release_0_1_store(state_url, KEY, fill=False)
    with _second_database(state_url, tmp_path) as other:
        with _connection(other) as conn:
            upgrade(conn, Keyring(KEY), target="0001")
        assert _describe(other) == _describe(state_url)


def test_two_migrators_at_once_migrate_once(state_url: str) -> None:
    """Two replicas migrating one 0.1 store together: one upgrades, the other waits, finds it done; the chain is signed once."""
    written = make_release_0_1_store(state_url, KEY)
    barrier = threading.Barrier(2)
    seen: list[str | None] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        store = SqlStateStore(state_url, KEY)
        barrier.wait()
        try:
            seen.append(store.migrate().revision)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(seen, key=str) == ["0001", HEAD_REVISION]
    check = SqlStateStore(state_url, KEY).verify_audit()
    assert (check.intact, check.events) == (True, len(written.events))
    with _connection(state_url) as conn:
        assert schema_version(conn).revision == HEAD_REVISION
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_two_first_writers_on_an_empty_database_create_it_once(state_url: str) -> None:
    """Two stores writing an empty database at the same moment: the tables are created once and both runs are recorded."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write() -> None:
        store = SqlStateStore(state_url, KEY)
        barrier.wait()
        try:
            store.start_run(RunTrigger.OPERATOR, T0)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(SqlStateStore(state_url, KEY).recent_runs()) == 2


@pytest.mark.postgres
def test_migrate_shows_no_password_and_alembic_stays_quiet(
    pg_url: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """At level DEBUG, `flagsync migrate` prints the store without its password, and Alembic's INFO chatter never shows."""
    make_release_0_1_store(pg_url, KEY)
    with_password = pg_url.replace("postgres@", "postgres:hunter2-secret@")

    assert main(["migrate", "--verbose", "--config", str(cli_config(with_password))]) == 0

    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert f"0001 -> {HEAD_REVISION}" in output
    assert "hunter2" not in output
    assert "Running upgrade" not in output and "Context impl" not in output
