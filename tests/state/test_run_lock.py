"""The single-run lock: one holder at a time across threads, processes and PostgreSQL sessions."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flagsync.adapters import run_lock
from flagsync.adapters.run_lock import ADVISORY_LOCK_KEY, IN_PROGRESS_MESSAGE, RunLock, lock_file_for
from flagsync.errors import RunInProgressError, RunInterrupted, StateError

#: A short wait keeps the tests quick; nothing asserts on how long anything took.
SHORT_WAIT = 0.2

HOLDER_SCRIPT = """
import sys
from flagsync.adapters.run_lock import RunLock
with RunLock(sys.argv[1], wait_seconds=0):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(params=["sqlite", "sqlite_memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def lock_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state URL for each kind of lock: file beside SQLite, temp-dir file for in-memory SQLite, advisory for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    if request.param == "sqlite_memory":
        return "sqlite://"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state URL whose lock other processes share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def _in_thread(action: Callable[[], object]) -> BaseException | None:
    """Run `action` in another thread and return what it raised, if anything."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_second_acquirer_in_another_thread_is_refused(lock_url: str) -> None:
    """While one holder has the lock, another thread waiting for it gets RunInProgressError."""
    with RunLock(lock_url, wait_seconds=0):
        raised = _in_thread(lambda: RunLock(lock_url, wait_seconds=SHORT_WAIT).acquire())

    assert isinstance(raised, RunInProgressError)
    assert str(raised) == IN_PROGRESS_MESSAGE


def test_released_lock_can_be_taken_again(lock_url: str) -> None:
    """Once released, the lock can be taken by another holder and by the same one."""
    first = RunLock(lock_url, wait_seconds=0)
    with first:
        assert first.held
    assert not first.held

    with RunLock(lock_url, wait_seconds=0) as second:
        assert second.held
    with first:
        assert first.held


def test_a_zero_wait_never_waits_and_says_whether_it_got_the_lock(lock_url: str) -> None:
    """With wait_seconds=0 a held lock is refused at once, and a free one taken (the daemon's skip-a-cycle use)."""
    holder = RunLock(lock_url, wait_seconds=0)
    holder.acquire()
    other = RunLock(lock_url, wait_seconds=0)

    assert isinstance(_in_thread(other.acquire), RunInProgressError)
    assert not other.held

    holder.release()
    other.acquire()
    assert other.held
    other.release()


def test_a_waiting_acquirer_gets_the_lock_when_it_is_released(lock_url: str) -> None:
    """An acquirer that is still waiting when the holder releases takes the lock instead of failing."""
    holder = RunLock(lock_url, wait_seconds=0)
    holder.acquire()
    waiter = RunLock(lock_url, wait_seconds=60)
    started = threading.Event()

    def wait_for_it() -> None:
        started.set()
        waiter.acquire()

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    started.wait()
    holder.release()
    thread.join()

    assert waiter.held
    waiter.release()


def test_one_instance_cannot_be_entered_twice(lock_url: str) -> None:
    """Taking a lock the same instance already holds is a programming error, not a silent re-entry."""
    lock = RunLock(lock_url, wait_seconds=0)
    with lock, pytest.raises(RuntimeError):
        lock.acquire()


def test_lock_is_released_when_the_run_fails(lock_url: str) -> None:
    """An exception inside the locked block still releases the lock."""
    with pytest.raises(ZeroDivisionError), RunLock(lock_url, wait_seconds=0):
        _ = 1 / 0

    with RunLock(lock_url, wait_seconds=0) as again:
        assert again.held


def test_holder_in_another_process_blocks_until_it_exits(shared_url: str) -> None:
    """A lock held by another process refuses this one, and is free again when that process ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, shared_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"

        with pytest.raises(RunInProgressError):
            RunLock(shared_url, wait_seconds=SHORT_WAIT).acquire()

        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
        holder.wait()

    with RunLock(shared_url, wait_seconds=0) as lock:
        assert lock.held


def test_a_killed_holder_leaves_no_stale_lock(shared_url: str) -> None:
    """A holder that dies without releasing (SIGKILL) does not keep the lock: the OS or the server frees it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, shared_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    if holder.stdin is not None:
        holder.stdin.close()
    holder.stdout.close()

    # PostgreSQL notices the closed session promptly; allow it a generous moment.
    with RunLock(shared_url, wait_seconds=30) as lock:
        assert lock.held


def test_sqlite_lock_file_sits_beside_the_state_file(tmp_path: Path) -> None:
    """The lock for an SQLite state file is `<state file>.lock`, created with its directory if missing."""
    state = tmp_path / "not-yet" / "flagsync-state.db"

    with RunLock(f"sqlite:///{state}", wait_seconds=0):
        assert (tmp_path / "not-yet" / "flagsync-state.db.lock").exists()
    assert lock_file_for(make_url(f"sqlite:///{state}")) == tmp_path / "not-yet" / "flagsync-state.db.lock"


def test_in_memory_lock_file_is_in_the_temp_dir_and_names_no_secret() -> None:
    """A URL with no state file gets a hashed lock file name in the temp dir that does not spell the URL."""
    path = lock_file_for(make_url("sqlite://"))
    other = lock_file_for(make_url("mysql://flagsync:hunter2@db/state"))

    assert path.name.startswith("flagsync-")
    assert path != other
    assert "hunter2" not in str(other)


@pytest.mark.postgres
def test_advisory_lock_is_seen_from_another_connection(pg_url: str) -> None:
    """While held, the advisory lock cannot be taken by another PostgreSQL session; after release it can."""
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            try_lock = text("SELECT pg_try_advisory_lock(:key)")
            with RunLock(pg_url, wait_seconds=0):
                assert conn.execute(try_lock, {"key": ADVISORY_LOCK_KEY}).scalar_one() is False
                # Advisory locks belong to a database; other tests' databases on the same server hold their own.
                held = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                ).scalar_one()
                assert held == 1
            assert conn.execute(try_lock, {"key": ADVISORY_LOCK_KEY}).scalar_one() is True
            with pytest.raises(RunInProgressError):
                RunLock(pg_url, wait_seconds=SHORT_WAIT).acquire()
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
    finally:
        engine.dispose()


def test_unreachable_postgresql_is_a_state_error_without_the_password() -> None:
    """When PostgreSQL cannot be reached the lock raises StateError (not 'in progress') without the password."""
    lock = RunLock("postgresql+psycopg://flagsync:hunter2-secret@127.0.0.1:1/state?connect_timeout=2", wait_seconds=0)

    with pytest.raises(StateError) as caught:
        lock.acquire()

    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert not lock.held


def test_negative_wait_is_refused() -> None:
    """A negative wait is a programming error."""
    with pytest.raises(ValueError, match="negative"):
        RunLock("sqlite://", wait_seconds=-1)


# --------------------------------------------------------------------------------------------
# Fencing (issue 6): a lock lost while held stops the holder's writes


def test_check_passes_while_the_lock_is_held(lock_url: str) -> None:
    """A holder that still has its lock passes `check()` as often as it likes."""
    with RunLock(lock_url, wait_seconds=0) as lock:
        for _ in range(3):
            lock.check()


def test_a_removed_lock_file_counts_as_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the lock file is deleted (another holder could now lock a new one), `check()` raises RunInterrupted."""
    monkeypatch.setattr(run_lock, "FENCE_INTERVAL_SECONDS", 0.0)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with RunLock(url, wait_seconds=0) as lock:
        lock.check()
        lock_file_for(make_url(url)).unlink()
        with pytest.raises(RunInterrupted):
            lock.check()


@pytest.mark.postgres
def test_a_terminated_lock_session_counts_as_lost(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the server ends the session holding the advisory lock, `check()` raises RunInterrupted and another can lock."""
    monkeypatch.setattr(run_lock, "FENCE_INTERVAL_SECONDS", 0.0)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with RunLock(pg_url, wait_seconds=0) as lock:
            lock.check()
            with admin.connect() as conn:
                pids = (
                    conn.execute(
                        text(
                            "SELECT pid FROM pg_stat_activity"
                            " WHERE application_name = 'flagsync-run-lock' AND datname = current_database()"
                        )
                    )
                    .scalars()
                    .all()
                )
                assert len(pids) == 1
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
            with pytest.raises(RunInterrupted):
                lock.check()
            with RunLock(pg_url, wait_seconds=5):
                pass  # the lock really is free for someone else now
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_the_lock_connection_uses_keepalives(pg_url: str) -> None:
    """The advisory lock's connection has server-side TCP keepalives set, so a dead client loses its lock quickly."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with RunLock(pg_url, wait_seconds=0), admin.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT s.application_name FROM pg_stat_activity s JOIN pg_locks l ON l.pid = s.pid"
                    " WHERE l.locktype = 'advisory' AND s.datname = current_database()"
                )
            ).one()
            assert row.application_name == "flagsync-run-lock"
        lock = RunLock(pg_url, wait_seconds=0)
        lock.acquire()
        backend = lock._backend
        assert isinstance(backend, run_lock._AdvisoryLock) and backend._conn is not None
        assert backend._conn.execute(text("SHOW tcp_keepalives_idle")).scalar_one() == "10"
        raw = backend._conn.connection.dbapi_connection
        assert raw is not None and raw.info.get_parameters().get("application_name") == "flagsync-run-lock"  # type: ignore[attr-defined]
        lock.release()
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_a_standby_asking_again_and_again_keeps_one_connection(pg_url: str) -> None:
    """The leader lock's failed tries reuse their connection: a standby polling every second opens no new session each time."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    count = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'flagsync-run-lock' AND datname = current_database()"
    )
    try:
        with RunLock(pg_url, wait_seconds=0, role="leader"):
            standby = RunLock(pg_url, wait_seconds=0, role="leader")
            for _ in range(5):
                with pytest.raises(RunInProgressError):
                    standby.acquire()
            with admin.connect() as conn:
                assert conn.execute(count).scalar_one() == 2  # the leader's and the standby's, not six
        standby.acquire()  # the lead is free now: the same standby takes it on its kept connection
        standby.release()
    finally:
        admin.dispose()
