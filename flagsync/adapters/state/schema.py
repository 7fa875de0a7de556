"""The state store's tables as the current code reads and writes them (the head of the migrations in `migrations/`).

A change here is a new Alembic revision in `migrations/versions/`, never an edit of an old one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Dialect, Integer, MetaData, String, Table, Text
from sqlalchemy.types import TypeDecorator

#: The newest Alembic revision; the code below reads and writes exactly that schema.
HEAD_REVISION = "0004"

#: Mirrored in the kv table for flagsync 0.1, which predates Alembic: it refuses any value but "1", so an old
#: binary started against a migrated store stops instead of writing rows without key ids or chain hashes.
SCHEMA_VERSION = "4"
SCHEMA_VERSION_KEY = "schema_version"
WATERMARK_KEY = "watermark"

#: Length of a chain hash (HMAC-SHA256 in hex) and of a key id.
HASH_LENGTH = 64
KEY_ID_LENGTH = 8


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps it as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("state store timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        # SQLite's DateTime drops the offset anyway; storing naive UTC keeps text order == time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("trigger", String(32), nullable=False),
    Column("started_at", UtcDateTime, nullable=False, index=True),
    Column("finished_at", UtcDateTime),
    Column("outcome", String(32)),
    Column("counts_json", Text, nullable=False, default="{}"),
)

pending_removals = Table(
    "pending_removals",
    metadata,
    Column("involvement_id", Text, primary_key=True),
    Column("person", Text, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("held", Boolean, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Which pseudonym key made `person` (revision 0002); never the key.
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    # Assigned by the store (one more than the chain's head), not by the database: the id is signed into the chain.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False, index=True),
    # The UTC day as YYYY-MM-DD, so that counting per day is the same plain GROUP BY on every backend.
    Column("day", String(10), nullable=False, index=True),
    Column("run_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("person", Text),
    Column("outcome", Text, nullable=False),
    Column("reason", Text),
    # The key that made `person` and signed `chain_hash` (revision 0002).
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
    # HMAC of the previous event's chain_hash and this event's fields, under the chain key (revision 0003).
    Column("chain_hash", String(HASH_LENGTH), nullable=False),
)

report_rows = Table(
    "report_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: People One refused (revision 0004): not asked again before `retry_at`. A person is named only by a pseudonym.
person_refusals = Table(
    "person_refusals",
    metadata,
    Column("person", Text, primary_key=True),
    Column("key_id", String(KEY_ID_LENGTH), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("retry_at", UtcDateTime, nullable=False, index=True),
)

#: Two rows (revision 0003): "head", the last event appended (a writer locks this row to append), and "anchor",
#: what the first kept event follows from (the genesis value, or the last purged event's hash). Each is signed.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("event_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("hash", String(HASH_LENGTH), nullable=False),
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
    Column("mac", String(HASH_LENGTH), nullable=False),
)
