"""Alembic, run from inside the package: which revision a state store is at, and bringing it to the head.

No alembic.ini and no URL: the caller's connection (in the caller's transaction) and the keyring
go to `migrations/env.py` through `Config.attributes`. Alembic logs through flagsync's logging
chain (its logger is held at WARNING there), so its records never echo the URL or a statement.

Alembic itself is imported only when a store has to be created or migrated: every command opens
the store and checks its revision (`current_revision`, one query of Alembic's version table), and
importing Alembic costs about a fifth of a second a command on a slow machine.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select, text

from flagsync.adapters.state.schema import HEAD_REVISION, SCHEMA_VERSION_KEY, kv
from flagsync.core.pseudonym import Keyring

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

#: Alembic's version table, as Alembic makes it (default name, the connection's default schema).
_VERSION_TABLE = "alembic_version"
_alembic_version = Table(_VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False))

#: The revision of a store flagsync 0.1 made: its tables, `schema_version` "1" in kv, no alembic_version table.
RELEASE_0_1_REVISION = "0001"

#: Serialises migrations across PostgreSQL replicas, inside the migrating transaction. It must differ from the
#: run lock's key: `flagsync migrate` holds the run lock while it migrates, from another session.
PG_SCHEMA_LOCK_KEY = int.from_bytes(bytes.fromhex("5f1c2a3b4d6e7f80"), "big", signed=True)


class SchemaVersion:
    """Where a store's schema stands: `revision` None means an empty database (no flagsync tables at all)."""

    def __init__(self, revision: str | None, *, stamped: bool) -> None:
        self.revision = revision
        self.stamped = stamped  # False for a store made by flagsync 0.1, which has no alembic_version table

    @property
    def current(self) -> bool:
        return self.revision == HEAD_REVISION

    @property
    def known(self) -> bool:
        return self.revision is None or self.revision in _known_revisions()


def _config(conn: Connection | None = None, keys: Keyring | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - only when migrating (see the module's docstring)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    config.attributes["keyring"] = keys
    return config


@cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - only for a store not at the head

    return frozenset(script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions())


def schema_version(conn: Connection) -> SchemaVersion:
    """The revision the store on `conn` is at (reads only)."""
    found = current_revision(conn)
    if found is not None:
        return SchemaVersion(found, stamped=True)
    tables = set(inspect(conn).get_table_names())
    if "kv" in tables and "runs" in tables:
        version = conn.execute(select(kv.c.value).where(kv.c.key == SCHEMA_VERSION_KEY)).scalar_one_or_none()
        if version == "1":
            return SchemaVersion(RELEASE_0_1_REVISION, stamped=False)
        return SchemaVersion(f"unknown (schema_version {version!r})", stamped=False)
    if tables & {"runs", "audit_events", "pending_removals", "report_rows", "kv"}:
        return SchemaVersion("unknown (some flagsync tables, no version)", stamped=False)
    return SchemaVersion(None, stamped=False)


def current_revision(conn: Connection) -> str | None:
    """The revision in Alembic's version table, as `MigrationContext.get_current_revision()` reads it, without Alembic.

    None when there is no version table or no row in it. These migrations never branch, so more
    than one row is not a revision this code knows (Alembic would refuse it as several heads).
    """
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    found = conn.execute(select(_alembic_version.c.version_num).limit(2)).scalars().all()
    if len(found) > 1:
        return "unknown (several heads in alembic_version)"
    return found[0] if found else None


def upgrade(conn: Connection, keys: Keyring, *, target: str = "head") -> SchemaVersion:
    """Bring the store on `conn` to the head (or `target`) revision inside the caller's transaction; return where it was.

    On PostgreSQL a transaction-level advisory lock makes a second migrator wait and then find the
    work done; SQLite's BEGIN IMMEDIATE does the same. Refuses a revision this code does not know.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK_KEY})
    found = schema_version(conn)
    if not found.known:
        raise UnknownSchema(found.revision)
    if found.current or (found.revision is not None and found.revision == target):
        return found
    from alembic import command  # noqa: PLC0415 - only when migrating (see the module's docstring)

    config = _config(conn, keys)
    if found.revision is not None and not found.stamped:
        command.stamp(config, found.revision)
    command.upgrade(config, target)
    return found


class UnknownSchema(Exception):
    """The store is at a revision this flagsync does not know: written by a newer one, or not by flagsync."""

    def __init__(self, revision: str | None) -> None:
        super().__init__(revision)
        self.revision = revision
