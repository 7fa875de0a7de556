"""Connections to the state store: URLs, private files, SQLite tuning, read-only opening and safe error messages.

Every SQLAlchemy failure leaves as a `StateError` whose message carries no SQL parameter, no URL and
no password; a file that cannot be written is named with the reason (read-only file system,
directory or file), so that an operator knows what to fix.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from flagsync.errors import StateError

#: The state store's files (database, WAL, shared memory, run lock) are the owner's alone: they hold
#: pseudonyms and One's involvement ids. A directory flagsync creates for them is the owner's alone too.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

#: How long an SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30

#: SQLite result codes that mean "this file cannot be written or opened", as sqlite3 names them.
_SQLITE_UNWRITABLE = frozenset({"SQLITE_READONLY", "SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN", "SQLITE_PERM"})


def parse_state_url(url: str) -> URL:
    """The state store URL parsed, or a StateError that does not echo it."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise StateError("the state store URL is not a valid SQLAlchemy URL") from None


def sqlite_file_path(url: URL) -> Path | None:
    """The database file of an SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
        if not database or database == ":memory:":
            return None
    return Path(database)


def describe_url(url: URL) -> str:
    """The backend and database, safe to print (no password)."""
    return url.render_as_string(hide_password=True)


def create_private_file(path: Path) -> None:
    """Create `path` (and a missing parent directory) for the owner alone, unless it exists already.

    SQLite gives its -wal, -shm and -journal files the permissions of the database file, so a
    database created 0600 here keeps its companions 0600 too. Existing files and directories are
    left as they are (an operator may have set them up on purpose).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def unwritable_cause(path: Path) -> str | None:
    """Why `path` (a file, existing or to be created) cannot be written, or None when nothing says it cannot.

    Asks the file system (a read-only mount), then the permissions of the nearest existing directory
    and of the file. As root, permissions do not stop a write, and so are not a cause.
    """
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        return None
    if not os.access(directory, os.W_OK | os.X_OK):
        return "permission denied (read-only directory)"
    if path.exists() and not os.access(path, os.W_OK):
        return "permission denied (read-only file)"
    return None


def os_error_cause(path: Path, exc: OSError) -> str:
    """A short cause for a failed write of `path`: the file system's own answer when it has one."""
    found = unwritable_cause(path)
    if found is not None:
        return found
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror.lower() if exc.strerror else type(exc).__name__


def unwritable_error(path: Path, cause: str) -> StateError:
    return StateError(f"cannot write the state store {path}: {cause}")


def prepare_for_writing(path: Path) -> None:
    """Make sure the SQLite file exists (created private) and can be written, or raise a StateError naming it and why."""
    try:
        create_private_file(path)
    except OSError as exc:
        raise unwritable_error(path, os_error_cause(path, exc)) from None
    cause = unwritable_cause(path)
    if cause is not None:
        raise unwritable_error(path, cause)


def create_writer_engine(url: URL) -> Engine:
    """An engine that may write: pre-pinged pooled PostgreSQL, or SQLite in WAL mode with BEGIN IMMEDIATE."""
    try:
        if url.get_backend_name() != "sqlite":
            return create_engine(url, hide_parameters=True, pool_pre_ping=True)
        path = sqlite_file_path(url)
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        if path is None:
            engine = create_engine(url, hide_parameters=True, connect_args=connect_args, poolclass=StaticPool)
        else:
            engine = create_engine(url, hide_parameters=True, connect_args=connect_args)
    except (SQLAlchemyError, ImportError) as exc:
        raise StateError(f"cannot set up the state store ({type(exc).__name__})") from None
    _tune_sqlite(engine, wal=path is not None, begin="BEGIN IMMEDIATE")
    return engine


def create_reader_engine(url: URL) -> Engine:
    """An engine that cannot write: a PostgreSQL session in read-only mode, or an SQLite file opened `mode=ro`.

    A WAL database whose directory cannot be written and that has no `-shm` file (nobody has it
    open) can only be opened immutable: SQLite then reads the database file as of its last
    checkpoint, which is all there is to read when no connection is open.
    """
    try:
        if url.get_backend_name() != "sqlite":
            return create_engine(url, hide_parameters=True, pool_pre_ping=True, execution_options={"postgresql_readonly": True})
        path = sqlite_file_path(url)
        if path is None:
            raise StateError("an in-memory state store has nothing to read")
        engine = create_engine("sqlite://", hide_parameters=True, creator=lambda: _open_read_only(path))
    except (SQLAlchemyError, ImportError) as exc:
        raise StateError(f"cannot set up the state store ({type(exc).__name__})") from None
    _tune_sqlite(engine, wal=False, begin="BEGIN")
    return engine


def _open_read_only(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # opening is lazy: this is where a WAL file fails
    except sqlite3.OperationalError:
        conn.close()
        return sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
    return conn


def _tune_sqlite(engine: Engine, *, wal: bool, begin: str) -> None:
    """A busy timeout (and WAL) on every connection, and transactions begun by us.

    pysqlite's own transaction handling begins lazily and skips DDL; a deferred transaction that
    reads and then writes can fail at once with "database is locked" instead of waiting. A writer's
    BEGIN IMMEDIATE waits (up to the busy timeout) for the lock before the first statement; a
    reader's plain BEGIN still gives it one consistent snapshot for the whole transaction.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below issues BEGIN itself
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            if wal:
                _switch_to_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


def _switch_to_wal(cursor: Any) -> None:
    """PRAGMA journal_mode = WAL, waiting for a connection that is busy with the same new file.

    Two processes opening a brand-new database together can get "database is locked" from this
    PRAGMA at once: SQLite does not call the busy handler for it. So it is retried (up to the busy
    timeout) instead of failing the first write.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def translated(what: str, path: Path | None) -> Iterator[None]:
    """Turn SQLAlchemy errors into a `StateError` naming only the operation and the error class.

    An SQLite file that cannot be written is named, with the cause. The original is not chained:
    driver messages can quote stored values and connection details.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        if path is not None and getattr(orig, "sqlite_errorname", None) in _SQLITE_UNWRITABLE:
            cause = unwritable_cause(path)
            if cause is not None:
                raise unwritable_error(path, cause) from None
        raise StateError(f"state store failed to {what} ({error_summary(exc)})") from None


def error_summary(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    sqlstate = getattr(orig, "sqlstate", None)
    return f"{name}, SQLSTATE {sqlstate}" if isinstance(sqlstate, str) else name
