"""Reads consent records from a SQL table or view through SQLAlchemy Core, selecting only the contract's columns.

Privacy: only the mapped contract columns are ever named in a SELECT, so names, addresses, notes
and anything else the table holds are never read (errors quote nothing either: `engine`).

Streaming: rows come from a server-side cursor where the driver has one (PostgreSQL), in batches
of `BATCH_SIZE`, so a large table never sits in memory at once.

Duplicate record ids are found by the database itself, compared as stored with the database's own
equality, so every occurrence is quarantined. A primary key, unique constraint or (non-partial)
unique index on the record id column alone makes them impossible, and then no query is spent on
them. Otherwise a whole read joins GROUP BY record id HAVING COUNT(*) > 1 onto the rows, and a
person's read counts each of its rows' record id (one lookup in the record id index per row).

How a person's rows are found is explained in `layout`, how changes are detected in `changes`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from flagsync.adapters.sql.changes import UNPROBED_DUTY, ChangeProbe, DigestVersions, changes_by_updated_at
from flagsync.adapters.sql.engine import BATCH_SIZE, ConsentDatabase, error_kind
from flagsync.adapters.sql.layout import Layout, inspect_layout
from flagsync.core.model import CONTRACT_COLUMNS, SourceItem, is_valid_person_id
from flagsync.core.records import RowParser, column_map
from flagsync.errors import SourceError
from flagsync.ports import Changes

_DEFAULT_ZONE = "Europe/London"
_DUPLICATE_MARK = "flagsync_duplicate_of"


class SqlConsentSource:
    """A `ConsentSource` over a table or view in any database SQLAlchemy supports.

    `url` is a SQLAlchemy URL (``postgresql://`` means the psycopg 3 driver); `table` may be
    ``schema.table``; `columns` maps contract names to the table's column names (identity by
    default); `zone` is the zone of naive timestamps (Europe/London by default). Nothing connects
    until a method is called. Raises ConfigError for a bad URL, a missing driver or an unknown
    contract name in `columns`.
    """

    def __init__(self, url: str, table: str, columns: Mapping[str, str] | None = None, zone: ZoneInfo | None = None) -> None:
        self._columns = column_map(columns)
        self._zone = zone if zone is not None else ZoneInfo(_DEFAULT_ZONE)
        self._database = ConsentDatabase(url, table)
        # Change detection (see flagsync.adapters.sql.changes): the probe and its own connection, what the last
        # answer was for which probe value, and the per-person digests of the versions a caller may still name.
        self._watch_lock = threading.Lock()
        self._probe = ChangeProbe(self._database)
        self._memo: tuple[object, str | None] | None = None
        self._quiet_until = 0.0
        self._digests = DigestVersions()

    # ------------------------------------------------------------------------------------------
    # ConsentSource

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        """Every record, streamed; raises SourceError when the table cannot be read."""
        return self._read(now, person_id=None)

    def read_person(self, person_id: str, now: datetime) -> Iterator[SourceItem]:
        """Every record that `read_all` attributes to this person id (found through the person_id index)."""
        if not is_valid_person_id(person_id):
            return iter(())  # no record can name a malformed id, and it never goes near SQL
        return self._read(now, person_id=person_id)

    def changes_since(self, watermark: str | None) -> Changes:
        """Which people changed since `watermark` (see `flagsync.adapters.sql.changes` for how).

        Called every change poll: while the probe says nothing was committed since this process last
        answered for `watermark`, it sends nothing to the database but the probe.
        """
        with self._watch_lock:
            token = self._probe.value()
            memo = self._memo
            if watermark is not None and memo is not None and memo[1] == watermark:
                if token is not None and memo[0] == token:
                    return Changes(person_ids=frozenset(), watermark=watermark)
                if self._probe.kind() is None and time.monotonic() < self._quiet_until:
                    return Changes(person_ids=frozenset(), watermark=watermark)  # no probe: not looked again yet
            started = time.monotonic()
            label = self._database.table_label
            try:
                with self._database.connect() as conn:
                    layout = inspect_layout(conn, self._database, self._columns)
                    watch = self._probe.look(conn, layout)
                    if layout.columns["updated_at"] is not None:
                        changes = changes_by_updated_at(conn, watch, watermark, label)
                    else:
                        changes = self._digests.changes(conn, self._select_records(layout, None), watermark, label)
            except SourceError:
                self._probe.forget()
                self._memo = None
                raise
            self._memo = (token, changes.watermark)
            self._quiet_until = time.monotonic() + (time.monotonic() - started) * (1 / UNPROBED_DUTY - 1)
            return changes

    def describe(self) -> str:
        return f"sql table {self._database.table_label} on {self._database.safe_url}"

    def close(self) -> None:
        """Release the probe's connection and pooled connections (for shutdown and tests)."""
        with self._watch_lock:
            self._probe.close()
        self._database.engine.dispose()

    # ------------------------------------------------------------------------------------------
    # Reading

    def _read(self, now: datetime, person_id: str | None) -> Iterator[SourceItem]:
        with self._database.connect() as conn:
            layout = inspect_layout(conn, self._database, self._columns)
            statement = self._select_records(layout, person_id)
            parser = RowParser(now=now, zone=self._zone)
            parse = parser.parse
            duplicate_at = len(CONTRACT_COLUMNS)
            try:
                result = conn.execution_options(stream_results=True, yield_per=BATCH_SIZE).execute(statement)
                if person_id is None:
                    for row in result:
                        yield parse(row, row[duplicate_at] is not None)
                    return
                for row in result:
                    item = parse(row, row[duplicate_at] is not None)
                    if item.person_id == person_id:  # the probes over-select; keep exactly what read_all attributes
                        yield item
            except SQLAlchemyError as exc:
                raise SourceError(f"cannot read the consent table {self._database.table_label!r} ({error_kind(exc)})") from None

    def _select_records(self, layout: Layout, person_id: str | None) -> sa.Select[tuple[object, ...]]:
        """The contract columns in contract order (NULL for an absent optional one), then a duplicate mark.

        The mark is not NULL when the row's record id occurs more than once in the table. With a
        primary key or unique constraint on the record id it is simply NULL; otherwise a whole read
        joins the ids that occur more than once (one GROUP BY), and a person's read asks, per row,
        for the count of its record id (one index lookup each, with an index on the record id).
        """
        rows = layout.table
        selected = [
            (rows.c[actual] if actual is not None else sa.null()).label(name)
            for name, actual in ((name, layout.columns[name]) for name in CONTRACT_COLUMNS)
        ]
        record_id = layout.column("record_id")
        if layout.unique_record_id:
            statement = sa.select(*selected, sa.null().label(_DUPLICATE_MARK))
        elif person_id is None:
            counted = layout.table.alias("flagsync_counted")
            counted_id = counted.c[record_id.name]
            duplicated = (
                sa.select(counted_id.label("record_id"))
                .group_by(counted_id)
                .having(sa.func.count() > 1)
                .subquery("flagsync_duplicates")
            )
            statement = sa.select(*selected, duplicated.c.record_id.label(_DUPLICATE_MARK)).select_from(
                rows.outerjoin(duplicated, record_id == duplicated.c.record_id)
            )
        else:
            other = layout.table.alias("flagsync_other")
            count = sa.select(sa.func.count()).select_from(other).where(other.c[record_id.name] == record_id).scalar_subquery()
            statement = sa.select(*selected, sa.case((count > 1, sa.literal(1)), else_=sa.null()).label(_DUPLICATE_MARK))
        if person_id is not None:
            condition = layout.person_condition(person_id)
            if condition is not None:
                statement = statement.where(condition)
        return statement
