"""Where the consent table is and how to reach it: the database URL and engine, connections, and errors that quote nothing.

Errors become `SourceError` with a message built here (what failed and the exception type), never
the driver's text, which can quote SQL parameters or the URL; the engine also hides parameters from
SQLAlchemy's own messages.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from flagsync.errors import ConfigError, SourceError

#: Rows fetched from the database per round trip while streaming.
BATCH_SIZE = 1000


class ConsentDatabase:
    """The consent table's database and the table's name in it.

    `url` is a SQLAlchemy URL (``postgresql://`` means the psycopg 3 driver); `table` may be
    ``schema.table``. Nothing connects until `connect` is called. Raises ConfigError for a bad URL,
    a missing driver or an empty table name.
    """

    def __init__(self, url: str, table: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError("source.url is not a valid SQLAlchemy database URL") from None
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # the postgres extra installs psycopg 3
        self.url = parsed
        self.safe_url = parsed.set(query={}).render_as_string(hide_password=True)
        schema, _, name = table.strip().rpartition(".")
        if not name:
            raise ConfigError("source.table must name a table or view")
        self.schema = schema or None
        self.table_name = name
        self.table_label = table.strip()
        try:
            self.engine: Engine = sa.create_engine(parsed, hide_parameters=True, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ImportError):
            raise ConfigError(f"source.url: no usable database driver for {parsed.drivername!r}") from None
        self._file_lock = threading.Lock()
        self._pool_file: tuple[int, int] | None = None  # SQLite: the (device, inode) the pooled connections opened

    @property
    def backend(self) -> str:
        """The database's backend name ("sqlite", "postgresql", ...)."""
        return self.url.get_backend_name()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A pooled connection; raises SourceError for a missing SQLite file or a failed connection."""
        identity = self.sqlite_file_identity()  # raises SourceError for a missing SQLite file
        with self._file_lock:
            if identity != self._pool_file:
                # A new file renamed over the old one (a restore): pooled connections still read the old file.
                self.engine.dispose()
                self._pool_file = identity
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot connect to the consent database {self.safe_url} ({error_kind(exc)})") from None
        with conn:
            yield conn

    def sqlite_file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of an SQLite database file; None for any other database."""
        if self.backend != "sqlite":
            return None
        if self._missing_sqlite_file():
            raise SourceError(f"the consent database file does not exist: {self.url.database}")
        database = self.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        try:
            found = os.stat(database)
        except OSError as exc:
            raise SourceError(f"cannot open the consent database file {database} ({type(exc).__name__})") from None
        return found.st_dev, found.st_ino

    def _missing_sqlite_file(self) -> bool:
        """SQLite would silently create an empty database for a missing file; that is a source error."""
        database = self.url.database
        if self.backend != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
            return False
        return not Path(database).is_file()


def error_kind(exc: SQLAlchemyError) -> str:
    """The exception's type name: the driver's own when wrapped (its message may quote values)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return type(exc.orig).__name__
    return type(exc).__name__
