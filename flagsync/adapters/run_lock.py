"""The single-run lock and the daemon's leader lock: a file lock beside an SQLite state store, a PostgreSQL advisory
lock beside a PostgreSQL one.

Held for the whole of a writing run, so that a daemon, an operator's `flagsync sync` and a second
replica never write at the same time. Whoever cannot take it within `wait_seconds` gets
`RunInProgressError`.

Fencing: a lock can be lost while held - the PostgreSQL connection holding a session-level advisory
lock drops (the server ends the session and the lock with it), or the lock file is deleted. The run
calls `check()` before each write; it asks the backend at most every `FENCE_INTERVAL_SECONDS` whether
the lock is still its own and raises `RunInterrupted` once it is not, so a run that lost its lock
stops writing within about that interval. The lock connection uses TCP keepalives (client and server
side), so a silently dead network path is noticed in well under a minute rather than hours.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

import filelock
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from flagsync.adapters.state.engine import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, os_error_cause, parse_state_url, sqlite_file_path
from flagsync.errors import RunInProgressError, RunInterrupted, StateError

#: The session-level advisory lock key every flagsync replica agrees on: the first 8 bytes of SHA-256("flagsync").
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"flagsync").digest()[:8], "big", signed=True)

#: The leader lock's key: held by the one active daemon for as long as it lives (`RunLock(url, role="leader")`).
LEADER_LOCK_KEY = int.from_bytes(hashlib.sha256(b"flagsync:leader").digest()[:8], "big", signed=True)

_ROLES = {"run": (ADVISORY_LOCK_KEY, ".lock"), "leader": (LEADER_LOCK_KEY, ".leader.lock")}

#: How often a waiting PostgreSQL acquirer asks again.
POLL_INTERVAL_SECONDS = 0.1

IN_PROGRESS_MESSAGE = "another flagsync run is in progress"
LOST_MESSAGE = "the single-run lock was lost (its database connection dropped, or the lock file was removed)"

#: How often `check()` asks the backend whether the lock is still held (at most).
FENCE_INTERVAL_SECONDS = 0.5

#: libpq connection settings for the lock's own connection: client-side keepalives, a cap on unacknowledged
#: sends, server-side keepalives (so the server drops a dead client's session, and its lock, quickly), and a
#: name that shows in pg_stat_activity.
_LOCK_CONNECTION_ARGS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
    "application_name": "flagsync-run-lock",
    "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
}


class _Backend(Protocol):
    def acquire(self, wait_seconds: float) -> bool: ...

    def release(self) -> None: ...

    def still_held(self) -> bool: ...


class RunLock:
    """Context manager holding a lock for a state store URL; `wait_seconds=0` tries once and never waits.

    `role="run"` (default) is the single-run lock, held for the whole of a writing run; `role="leader"`
    is the daemon's leader lock, held by the one active replica for its whole life. One instance is
    one holder: use a fresh instance (or release first) to take the lock again.
    """

    def __init__(self, state_url: str, *, wait_seconds: float = 5.0, role: Literal["run", "leader"] = "run") -> None:
        if wait_seconds < 0:
            raise ValueError("wait_seconds must not be negative")
        key, suffix = _ROLES[role]
        self._wait_seconds = wait_seconds
        url = parse_state_url(state_url)
        self._backend: _Backend = (
            _AdvisoryLock(url, key, keep_trying=role == "leader")
            if url.get_backend_name() == "postgresql"
            else _FileLock(lock_file_for(url, suffix))
        )
        self._held = False
        self._lost = False
        self._checked_at = 0.0
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held

    def check(self) -> None:
        """Raise `RunInterrupted` if the lock is no longer this holder's (asks the backend at most every 0.5 s)."""
        with self._guard:
            if not self._held:
                raise RuntimeError("this RunLock is not held")
            now = time.monotonic()
            if not self._lost and now - self._checked_at >= FENCE_INTERVAL_SECONDS:
                self._checked_at = now
                self._lost = not self._backend.still_held()
            if self._lost:
                raise RunInterrupted(LOST_MESSAGE)

    def acquire(self) -> None:
        """Take the lock within `wait_seconds`, or raise `RunInProgressError` (`StateError` if PostgreSQL is unreachable)."""
        with self._guard:
            if self._held:
                raise RuntimeError("this RunLock is already held")
            if not self._backend.acquire(self._wait_seconds):
                raise RunInProgressError(IN_PROGRESS_MESSAGE)
            self._held, self._lost, self._checked_at = True, False, time.monotonic()

    def release(self) -> None:
        """Give the lock back; releasing a lock not held does nothing."""
        with self._guard:
            if self._held:
                self._held = False
                self._backend.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def lock_file_for(url: URL, suffix: str = ".lock") -> Path:
    """`<state file>.lock` for an SQLite file; a file in the temp dir keyed by a hash of the URL otherwise."""
    path = sqlite_file_path(url) if url.get_backend_name() == "sqlite" else None
    if path is not None:
        return path.with_name(path.name + suffix)
    digest = hashlib.sha256(url.render_as_string(hide_password=False).encode("utf-8")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"flagsync-{digest}{suffix}"


class _FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        # thread_local=False: the holder may release from another thread (a daemon's job vs its shutdown).
        self._lock = filelock.FileLock(path, thread_local=False, mode=PRIVATE_FILE_MODE)
        self._identity: tuple[int, int] | None = None

    def acquire(self, wait_seconds: float) -> bool:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
            self._lock.acquire(timeout=wait_seconds)
            self._identity = _file_identity(self._path)
        except filelock.Timeout:
            return False
        except OSError as exc:
            raise StateError(f"cannot write the run lock file {self._path}: {os_error_cause(self._path, exc)}") from None
        return True

    def release(self) -> None:
        self._lock.release()
        self._identity = None

    def still_held(self) -> bool:
        """Held by us, and the lock file is still the one we locked (not removed, not replaced by another)."""
        try:
            return self._lock.is_locked and self._identity is not None and _file_identity(self._path) == self._identity
        except OSError:
            return False


class _AdvisoryLock:
    """A session-level advisory lock on a connection of its own, kept open (outside any transaction) while held.

    `keep_trying`: a failed try keeps the connection for the next one (the daemon's standby asks every
    poll; a new connection a second would be churn for the database). Otherwise a failed try closes it.
    """

    def __init__(self, url: URL, key: int, *, keep_trying: bool = False) -> None:
        self._url = url
        self._key = key
        self._keep_trying = keep_trying
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    def acquire(self, wait_seconds: float) -> bool:
        deadline = time.monotonic() + wait_seconds
        try:
            if self._conn is None:
                # An application_name the operator put in the URL wins (it tells replicas apart in pg_stat_activity).
                args = {k: v for k, v in _LOCK_CONNECTION_ARGS.items() if not (k == "application_name" and k in self._url.query)}
                self._engine = create_engine(self._url, hide_parameters=True, poolclass=NullPool, connect_args=args)
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            while True:
                taken = self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}).scalar_one()
                if taken:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not self._keep_trying:
                        self._close()
                    return False
                time.sleep(min(POLL_INTERVAL_SECONDS, remaining))
        except SQLAlchemyError as exc:
            self._close()
            raise StateError(f"cannot take the run lock in the state store ({_error_name(exc)})") from None
        except BaseException:
            self._close()
            raise

    def still_held(self) -> bool:
        """Whether this session still holds the advisory lock; a dropped connection means it does not."""
        if self._conn is None:
            return False
        query = text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
            " AND classid = :hi AND objid = :lo AND objsubid = 1)"
        )
        key = self._key & 0xFFFFFFFFFFFFFFFF
        try:
            return bool(self._conn.execute(query, {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).scalar_one())
        except SQLAlchemyError:
            return False

    def release(self) -> None:
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except SQLAlchemyError:
            pass  # closing the session below releases a session-level lock all the same
        finally:
            self._close()

    def _close(self) -> None:
        conn, engine = self._conn, self._engine
        self._conn = self._engine = None
        try:
            if conn is not None:
                conn.close()
        except SQLAlchemyError:
            pass  # the connection is being thrown away; a failure to close it changes nothing
        finally:
            if engine is not None:
                engine.dispose()


def _file_identity(path: Path) -> tuple[int, int]:
    found = path.stat()
    return found.st_dev, found.st_ino


def _error_name(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ if orig is not None else type(exc).__name__
