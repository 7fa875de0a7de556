"""The single-run lock: a file lock beside an SQLite state store, a PostgreSQL advisory lock beside a PostgreSQL one.

Held for the whole of a writing run, so that a daemon, an operator's `flagsync sync` and a second
replica never write at the same time. Whoever cannot take it within `wait_seconds` gets
`RunInProgressError`.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol

import filelock
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from flagsync.adapters.sql_state import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, parse_state_url, sqlite_file_path
from flagsync.errors import RunInProgressError, StateError

#: The session-level advisory lock key every flagsync replica agrees on: the first 8 bytes of SHA-256("flagsync").
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"flagsync").digest()[:8], "big", signed=True)

#: How often a waiting PostgreSQL acquirer asks again.
POLL_INTERVAL_SECONDS = 0.1

IN_PROGRESS_MESSAGE = "another flagsync run is in progress"


class _Backend(Protocol):
    def acquire(self, wait_seconds: float) -> bool: ...

    def release(self) -> None: ...


class RunLock:
    """Context manager holding the single-run lock for a state store URL; `wait_seconds=0` tries once and never waits.

    One instance is one holder: use a fresh instance (or release first) to take the lock again.
    """

    def __init__(self, state_url: str, *, wait_seconds: float = 5.0) -> None:
        if wait_seconds < 0:
            raise ValueError("wait_seconds must not be negative")
        self._wait_seconds = wait_seconds
        url = parse_state_url(state_url)
        self._backend: _Backend = _AdvisoryLock(url) if url.get_backend_name() == "postgresql" else _FileLock(lock_file_for(url))
        self._held = False
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> None:
        """Take the lock within `wait_seconds`, or raise `RunInProgressError` (`StateError` if PostgreSQL is unreachable)."""
        with self._guard:
            if self._held:
                raise RuntimeError("this RunLock is already held")
            if not self._backend.acquire(self._wait_seconds):
                raise RunInProgressError(IN_PROGRESS_MESSAGE)
            self._held = True

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now, without waiting; say whether it was taken."""
        with self._guard:
            if self._held:
                raise RuntimeError("this RunLock is already held")
            self._held = self._backend.acquire(0)
            return self._held

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


def lock_file_for(url: URL) -> Path:
    """`<state file>.lock` for an SQLite file; a file in the temp dir keyed by a hash of the URL otherwise."""
    path = sqlite_file_path(url) if url.get_backend_name() == "sqlite" else None
    if path is not None:
        return path.with_name(path.name + ".lock")
    digest = hashlib.sha256(url.render_as_string(hide_password=False).encode("utf-8")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"flagsync-{digest}.lock"


class _FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        # thread_local=False: the holder may release from another thread (a daemon's job vs its shutdown).
        self._lock = filelock.FileLock(path, thread_local=False, mode=PRIVATE_FILE_MODE)

    def acquire(self, wait_seconds: float) -> bool:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
            self._lock.acquire(timeout=wait_seconds)
        except filelock.Timeout:
            return False
        except OSError as exc:
            raise StateError(f"cannot use the run lock file ({type(exc).__name__})") from None
        return True

    def release(self) -> None:
        self._lock.release()


class _AdvisoryLock:
    """A session-level advisory lock on a connection of its own, kept open (outside any transaction) while held."""

    def __init__(self, url: URL) -> None:
        self._url = url
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    def acquire(self, wait_seconds: float) -> bool:
        deadline = time.monotonic() + wait_seconds
        try:
            self._engine = create_engine(self._url, hide_parameters=True, poolclass=NullPool)
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            while True:
                taken = self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}).scalar_one()
                if taken:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._close()
                    return False
                time.sleep(min(POLL_INTERVAL_SECONDS, remaining))
        except SQLAlchemyError as exc:
            self._close()
            raise StateError(f"cannot take the run lock in the state store ({_error_name(exc)})") from None
        except BaseException:
            self._close()
            raise

    def release(self) -> None:
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
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


def _error_name(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ if orig is not None else type(exc).__name__
