"""Reads consent records from a SQL table or view through SQLAlchemy Core, selecting only the contract's columns.

Privacy: only the mapped contract columns are ever named in a SELECT, so names, addresses, notes
and anything else the table holds are never read. Errors become `SourceError` with a message
built here (what failed and the exception type), never the driver's text, which can quote SQL
parameters or the URL; the engine also hides parameters from SQLAlchemy's own messages.

Streaming: rows come from a server-side cursor where the driver has one (PostgreSQL), in batches
of `BATCH_SIZE`, so a large table never sits in memory at once.

Duplicate record ids are found by the database itself, compared as stored with the database's own
equality, so every occurrence is quarantined. A primary key, unique constraint or (non-partial)
unique index on the record id column alone makes them impossible, and then no query is spent on
them. Otherwise a whole read joins GROUP BY record id HAVING COUNT(*) > 1 onto the rows, and a
person's read counts each of its rows' record id (one lookup in the record id index per row).

Person reads (`read_person`) cost the same at any table size and never miss a record that
`read_all` attributes to the person. `read_all` attributes a row to a person by its stripped text
(Python's str.strip(), so ' P1001 ', '\tP1001' and 'P1001\u3000' all name P1001), so an exact
match alone would miss a padded withdrawal and let a person sync see only an older grant. The
person query is therefore an OR of index range probes, and Python keeps exactly the rows whose
parsed person id is the one asked for:

- the exact value;
- values starting with whitespace: every character strip() removes is in '\t'..' ' or
  '\x85'..'\u3000', and no person id starts with one, so two ranges hold them all (in a sound
  table they are empty);
- the person id followed by whitespace: the ranges (id, id + '!') and [id + '\x85', id + '\u3001');
- SQLite only (any column holds any type there): blobs (all sort after text, decoded like text),
  and the integer or real whose text is the id ('1001', 'inf').

PostgreSQL compares text by the column's collation, and a linguistic one sorts ' P1001' next to
'P1001' (spaces ignored), which would defeat the ranges; so the comparisons carry COLLATE "C"
(byte order) unless the column's own collation is already "C" or "POSIX". An integer person id
column is matched by value. Any other column type, another database, a SQLite database not in
UTF-8 or a column with a custom collation falls back to reading every row (correct, not
index-backed). The indexes that make person reads index-backed (see
docs/consent-source-indexes.md):

    -- SQLite (and PostgreSQL when the column's collation is "C" or "POSIX")
    CREATE INDEX consent_records_person_id ON consent_records (person_id);
    -- PostgreSQL, any other collation (the database default included)
    CREATE INDEX consent_records_person_id_c ON consent_records (person_id COLLATE "C");
    -- both, unless record_id is the primary key or unique
    CREATE INDEX consent_records_record_id ON consent_records (record_id);

Change detection (`changes_since`, called by the daemon every change poll, every second by default).
First a probe, which sends the database at most one cheap statement; only when its value moved since
this process last answered for the caller's watermark does the change query run:

- SQLite: `PRAGMA data_version` on a connection kept open for it (the value changes whenever another
  connection commits to the file; no table is read), plus the file's device and inode (a file
  renamed over the old one gets a new probe connection, and the pooled connections are dropped).
- PostgreSQL, with `updated_at`: the newest `updated_at` (one backward step in its index) and the
  table's count of deleted rows (`pg_stat_get_tuples_deleted`, no table access); without it: the
  table's counts of inserted, updated and deleted rows. PostgreSQL makes a session's counts visible
  once that session reports them (when it goes idle, at most about a second later, or at its end).
  A view or a partitioned parent keeps no counts: without `updated_at` it has no probe (below).
- Any other database: no probe. The change query then runs at most `UNPROBED_DUTY` of the time (a
  query that took 10 ms is not repeated within 190 ms), so watching costs at most 5% of a core.

The change query, chosen by whether the table has an `updated_at` column:

- with it, the watermark holds the largest `updated_at` seen and either the row count (SQLite and
  others: `count(*)` and `max(updated_at)` in one scan of the smallest covering index, run only
  after the probe fired) or PostgreSQL's deleted-rows count; a poll returns the people of rows
  whose `updated_at` lies after the old maximum, up to the new one (an index range on `updated_at`),
  so rows written during the poll are picked up next time. If the row count fell or the deleted
  count moved (rows deleted), or the watermark is absent or from another mode, the answer is "full
  reconcile" (`person_ids=None`). Not visible to this fast path, and left to the periodic full
  reconcile: rows with an empty `updated_at`, rows written with an `updated_at` older than the
  watermark (a transaction that commits long after it stamped its rows included), a deletion
  offset by inserts in the same interval on SQLite, and the person a row was moved away from.
  Text `updated_at` columns are compared as text, so they must be written in one consistent ISO
  format. An index on `updated_at` makes the probe and the query index-backed
  (docs/consent-source-indexes.md).
- without it, the table's mapped columns (and duplicate marks) are read once and each person's
  rows summed into a 64-bit digest (`flagsync.core.digests`: the person id in a compact key table
  plus 8 bytes, about 30 bytes a person, held in this process only). The people whose digest differs
  from the version the caller's watermark names changed (an insert, an update, a deletion, a row
  moved between people, or all of a person's rows gone). This version and the caller's are kept
  until the caller moves on; a watermark this process does not hold (the first poll, another
  process) means "full reconcile". The watermark names a version of this process only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import OID
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError

from flagsync.core.digests import DIGEST_MASK, PersonDigests
from flagsync.core.model import CONTRACT_COLUMNS, SourceItem, is_valid_person_id
from flagsync.core.records import OPTIONAL_COLUMNS, RowParser, column_map, normalize_person_id, normalize_text
from flagsync.errors import ConfigError, SourceError
from flagsync.ports import Changes

#: Rows fetched from the database per round trip while streaming.
BATCH_SIZE = 1000

_DEFAULT_ZONE = "Europe/London"
_DUPLICATE_MARK = "flagsync_duplicate_of"
_WATERMARK_VERSION = 1

#: Where the database offers no change probe, a full change query is run at most this often relative
#: to its own duration (a query that took 10 ms waits 190 ms), so that watching costs at most 5%.
UNPROBED_DUTY = 0.05

# Added to a row's digest when its record id occurs more than once (the duplicate mark decides its person too).
_REPEATED_MARK = 0x9E37_79B9_7F4A_7C15


#: How a person's rows are found (see the module docstring): SQLite probes, PostgreSQL probes on a
#: text column, equality on an integer column, or (anything else) reading every row and keeping theirs.
_SQLITE, _POSTGRES_TEXT, _INTEGER, _SCAN = "sqlite", "postgresql-text", "integer", "scan"

# Every character Python's str.strip() removes lies in one of these two ranges (tests check it).
_ASCII_SPACE_FIRST, _ASCII_SPACE_LAST = "\t", " "
_WIDE_SPACE_FIRST, _WIDE_SPACE_LAST = "\x85", "\u3000"

_PLAIN_INT = re.compile(r"0|[1-9][0-9]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class _Layout:
    """The table as found: contract column → actual source column (None for an absent optional one).

    `person_match` says how a person's rows are found; `collate_c` whether PostgreSQL comparisons
    need ``COLLATE "C"`` (the column's own collation is not C); `unique_record_id` whether a primary
    key or unique constraint on the record id column makes duplicates impossible.
    """

    table: sa.TableClause
    columns: Mapping[str, str | None]
    person_match: str
    collate_c: bool
    unique_record_id: bool
    relkind: str | None = None  # PostgreSQL: pg_class.relkind ('r' a table, 'v' a view, 'p' partitioned, ...)

    def column(self, name: str) -> sa.ColumnClause[object]:
        actual = self.columns[name]
        if actual is None:
            raise KeyError(name)
        return self.table.c[actual]

    def present(self) -> list[tuple[str, str]]:
        return [(name, actual) for name, actual in self.columns.items() if actual is not None]


@dataclass(frozen=True, slots=True)
class _Watch:
    """What the change probe needs to know about the table, from the last full look at it."""

    layout: _Layout
    oid: int | None  # PostgreSQL only

    @property
    def has_counters(self) -> bool:
        """PostgreSQL keeps per-table row counters for a plain table (not a view, nor a partitioned parent)."""
        return self.layout.relkind == "r"


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
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError("source.url is not a valid SQLAlchemy database URL") from None
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # the postgres extra installs psycopg 3
        self._url = parsed
        self._safe_url = parsed.set(query={}).render_as_string(hide_password=True)
        schema, _, name = table.strip().rpartition(".")
        if not name:
            raise ConfigError("source.table must name a table or view")
        self._schema = schema or None
        self._table_name = name
        self._table_label = table.strip()
        try:
            self._engine: Engine = sa.create_engine(parsed, hide_parameters=True, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ImportError):
            raise ConfigError(f"source.url: no usable database driver for {parsed.drivername!r}") from None
        # Change detection (see the module docstring): the probe's own connection, what the last answer
        # was for which probe value, and the per-person digests of the versions a caller may still name.
        self._watch_lock = threading.Lock()
        self._file_lock = threading.Lock()
        self._pool_file: tuple[int, int] | None = None  # SQLite: the (device, inode) the pooled connections opened
        self._watch: _Watch | None = None
        self._probe_conn: Connection | None = None
        self._probe_file: tuple[int, int] | None = None
        self._probe_generation = 0
        self._memo: tuple[object, str | None] | None = None
        self._quiet_until = 0.0
        self._versions: dict[str, PersonDigests] = {}
        self._last_diff: tuple[str, str, frozenset[str]] | None = None
        self._process_key = uuid.uuid4().hex[:16]  # digest watermarks hold Python hashes, meaningful in this process only

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
        """Which people changed since `watermark` (see the module docstring for how).

        Called every change poll: while the probe says nothing was committed since this process last
        answered for `watermark`, it sends nothing to the database but the probe.
        """
        with self._watch_lock:
            token = self._probe()
            memo = self._memo
            if watermark is not None and memo is not None and memo[1] == watermark:
                if token is not None and memo[0] == token:
                    return Changes(person_ids=frozenset(), watermark=watermark)
                if self._probe_kind() is None and time.monotonic() < self._quiet_until:
                    return Changes(person_ids=frozenset(), watermark=watermark)  # no probe: not looked again yet
            started = time.monotonic()
            try:
                with self._connection() as conn:
                    layout = self._layout(conn)
                    self._watch = _Watch(layout, self._table_oid(conn, layout))
                    if layout.columns["updated_at"] is not None:
                        changes = self._changes_by_updated_at(conn, layout, _decode_watermark(watermark))
                    else:
                        changes = self._changes_by_digests(conn, layout, watermark)
            except SourceError:
                self._watch = self._memo = None
                raise
            self._memo = (token, changes.watermark)
            self._quiet_until = time.monotonic() + (time.monotonic() - started) * (1 / UNPROBED_DUTY - 1)
            return changes

    def describe(self) -> str:
        return f"sql table {self._table_label} on {self._safe_url}"

    def close(self) -> None:
        """Release the probe's connection and pooled connections (for shutdown and tests)."""
        with self._watch_lock:
            self._close_probe()
        self._engine.dispose()

    # ------------------------------------------------------------------------------------------
    # Reading

    def _read(self, now: datetime, person_id: str | None) -> Iterator[SourceItem]:
        with self._connection() as conn:
            layout = self._layout(conn)
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
                raise SourceError(f"cannot read the consent table {self._table_label!r} ({_kind(exc)})") from None

    def _select_records(self, layout: _Layout, person_id: str | None) -> sa.Select[tuple[object, ...]]:
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
            condition = self._person_condition(layout, person_id)
            if condition is not None:
                statement = statement.where(condition)
        return statement

    def _person_condition(self, layout: _Layout, person_id: str) -> sa.ColumnElement[bool] | None:
        """An index-backed condition selecting at least every row `read_all` attributes to `person_id`.

        None means "no condition": every row is read and the parsed person id decides (the fallback).
        """
        column = layout.column("person_id")
        if layout.person_match == _INTEGER:
            # An integer's text never carries padding; only the canonical digits can name the person.
            return column == int(person_id) if _PLAIN_INT.fullmatch(person_id) else sa.false()
        if layout.person_match == _SCAN:
            return None
        compared: sa.ColumnElement[Any] = column.collate("C") if layout.collate_c else column
        after_ascii, after_wide = chr(ord(_ASCII_SPACE_LAST) + 1), chr(ord(_WIDE_SPACE_LAST) + 1)
        terms: list[sa.ColumnElement[bool]] = [
            compared == person_id,
            # A value starting with whitespace: every such value sorts inside one of these two ranges.
            sa.and_(compared >= _ASCII_SPACE_FIRST, compared < after_ascii),
            sa.and_(compared >= _WIDE_SPACE_FIRST, compared < after_wide),
            # The person id followed by whitespace (and maybe more): just after the exact value.
            sa.and_(compared > person_id, compared < person_id + after_ascii),
            sa.and_(compared >= person_id + _WIDE_SPACE_FIRST, compared < person_id + after_wide),
        ]
        if layout.person_match == _SQLITE:
            # SQLite keeps any value in any column: blobs sort after all text, and a number's text
            # can name a person only as its canonical form ("123", or "inf" for an infinite real).
            terms.append(column >= sa.literal(b"", sa.LargeBinary()))
            if _PLAIN_INT.fullmatch(person_id):
                terms.append(column == sa.literal(int(person_id), sa.Integer()))
            if person_id == "inf":
                terms.append(column == sa.literal(float("inf"), sa.Float()))
        return sa.or_(*terms)

    # ------------------------------------------------------------------------------------------
    # Changes

    def _changes_by_updated_at(self, conn: Connection, layout: _Layout, previous: dict[str, object] | None) -> Changes:
        updated_at = layout.column("updated_at")
        watch = self._watch
        count: int | None = None
        deleted: int | None = None
        try:
            if watch is not None and watch.oid is not None:
                # PostgreSQL: the newest updated_at through its index, and the table's count of deleted rows.
                newest, deleted = conn.execute(self._postgres_newest(watch)).one()
            else:
                # count(*) shows deletions; it is a scan of the smallest index (SQLite) and runs only after a commit.
                count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(updated_at)).select_from(layout.table)).one()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read changes from the consent table {self._table_label!r} ({_kind(exc)})") from None
        current = _encode_watermark({"mode": "updated_at", "count": count, "deleted": deleted, **_encode_value(newest)})
        if previous is None or previous.get("mode") != "updated_at":
            return Changes(person_ids=None, watermark=current)  # the first poll, or another mode
        if (count is not None and _as_int(previous.get("count")) > count) or previous.get("deleted") != deleted:
            return Changes(person_ids=None, watermark=current)  # rows were deleted
        try:
            since = _decode_value(previous)
        except ValueError:
            return Changes(person_ids=None, watermark=current)  # a watermark we cannot use: start afresh
        if since is not None and (newest is None or _before(newest, since)):
            return Changes(person_ids=None, watermark=current)  # the newest rows went (deleted, truncated, or backdated)
        if newest is None:
            return Changes(person_ids=frozenset(), watermark=current)
        window = [updated_at <= newest, updated_at > since if since is not None else updated_at.is_not(None)]
        statement = sa.select(layout.column("person_id")).distinct().where(*window)
        try:
            result = conn.execution_options(stream_results=True, yield_per=BATCH_SIZE).execute(statement)
            people = frozenset(pid for pid in (normalize_person_id(value) for (value,) in result) if pid is not None)
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read changes from the consent table {self._table_label!r} ({_kind(exc)})") from None
        return Changes(person_ids=people, watermark=current)

    def _changes_by_digests(self, conn: Connection, layout: _Layout, watermark: str | None) -> Changes:
        """Without updated_at: read the table's mapped columns once, and diff per-person digests against the caller's version."""
        digests = PersonDigests()
        total = 0
        add = digests.add
        statement = self._select_records(layout, None)
        try:
            for row in conn.execution_options(stream_results=True, yield_per=BATCH_SIZE).execute(statement):
                values: tuple[Any, ...] = tuple(row)
                person_id = normalize_person_id(values[1])
                if person_id is None:
                    continue  # a row naming nobody decides no one's flag
                row_digest = _row_digest(values)
                total += row_digest
                add(person_id, row_digest)
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read the consent table {self._table_label!r} ({_kind(exc)})") from None
        current = _encode_watermark(
            {"mode": "digests", "process": self._process_key, "people": len(digests), "sum": f"{total & DIGEST_MASK:016x}"}
        )
        # Keep this version and the caller's (while it differs): the caller stores the new watermark only after its run.
        base = self._versions.get(watermark) if watermark is not None else None
        if watermark == current:
            self._versions = {current: digests}
            return Changes(person_ids=frozenset(), watermark=current)
        if base is None or watermark is None:
            self._versions = {current: digests}
            return Changes(person_ids=None, watermark=current)  # the first poll, or a version this process does not hold
        self._versions = {watermark: base, current: digests}
        last = self._last_diff
        if last is not None and last[:2] == (watermark, current):
            return Changes(person_ids=last[2], watermark=current)
        changed = digests.changed_since(base)
        self._last_diff = (watermark, current, changed)
        return Changes(person_ids=changed, watermark=current)

    # ------------------------------------------------------------------------------------------
    # The change probe

    def _probe_kind(self) -> str | None:
        """Which probe this database has: SQLite's data_version, PostgreSQL's index and statistics, or none."""
        backend = self._url.get_backend_name()
        if backend == "sqlite":
            return "sqlite"
        if backend == "postgresql":
            watch = self._watch
            if watch is None or watch.oid is None:
                return None
            if watch.layout.columns["updated_at"] is None and not watch.has_counters:
                return None  # a view or partitioned table keeps no row counters: nothing cheap says it changed
            return "postgresql"
        return None

    def _probe(self) -> object:
        """A value that changes whenever a change may have been committed; None when there is no probe (yet)."""
        kind = self._probe_kind()
        if kind is None:
            return None
        conn = self._probe_connection()
        try:
            if kind == "sqlite":
                return (self._probe_generation, conn.exec_driver_sql("PRAGMA data_version").scalar())
            watch = self._watch
            assert watch is not None
            if watch.layout.columns["updated_at"] is not None:
                return (self._probe_generation, *conn.execute(self._postgres_newest(watch)).one())
            return (self._probe_generation, *conn.execute(_postgres_counters(watch)).one())
        except SQLAlchemyError as exc:
            self._close_probe()
            self._watch = None  # look at the table afresh next time
            raise SourceError(f"cannot read changes from the consent table {self._table_label!r} ({_kind(exc)})") from None

    def _probe_connection(self) -> Connection:
        """The probe's own connection, kept open (SQLite's data_version counts other connections' commits to this one)."""
        identity = self._sqlite_file_identity()
        if self._probe_conn is not None and identity == self._probe_file:
            return self._probe_conn
        self._close_probe()  # first use, or the database file was replaced: a new connection sees the new file
        try:
            self._probe_conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot connect to the consent database {self._safe_url} ({_kind(exc)})") from None
        self._probe_file = identity
        self._probe_generation += 1
        return self._probe_conn

    def _close_probe(self) -> None:
        conn, self._probe_conn = self._probe_conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):  # being thrown away: a failure to close changes nothing
                conn.close()

    def _sqlite_file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of an SQLite database file; None for any other database."""
        if self._url.get_backend_name() != "sqlite":
            return None
        if self._missing_sqlite_file():
            raise SourceError(f"the consent database file does not exist: {self._url.database}")
        database = self._url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        try:
            found = os.stat(database)
        except OSError as exc:
            raise SourceError(f"cannot open the consent database file {database} ({type(exc).__name__})") from None
        return found.st_dev, found.st_ino

    def _table_oid(self, conn: Connection, layout: _Layout) -> int | None:
        """PostgreSQL: the table's oid (for its statistics counters); None on any other database."""
        if self._url.get_backend_name() != "postgresql":
            return None
        qualified = self._engine.dialect.identifier_preparer.format_table(layout.table)
        try:
            oid = conn.execute(sa.select(sa.cast(sa.func.to_regclass(qualified), OID))).scalar()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot inspect the consent table {self._table_label!r} ({_kind(exc)})") from None
        return None if oid is None else int(oid)

    def _postgres_newest(self, watch: _Watch) -> sa.Select[object, int]:
        layout = watch.layout
        newest = sa.select(sa.func.max(layout.column("updated_at"))).select_from(layout.table).scalar_subquery()
        return sa.select(newest, sa.func.pg_stat_get_tuples_deleted(_oid(watch)))

    # ------------------------------------------------------------------------------------------
    # Connecting and finding the table

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        identity = self._sqlite_file_identity()  # raises SourceError for a missing SQLite file
        with self._file_lock:
            if identity != self._pool_file:
                # A new file renamed over the old one (a restore): pooled connections still read the old file.
                self._engine.dispose()
                self._pool_file = identity
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot connect to the consent database {self._safe_url} ({_kind(exc)})") from None
        with conn:
            yield conn

    def _missing_sqlite_file(self) -> bool:
        """SQLite would silently create an empty database for a missing file; that is a source error."""
        database = self._url.database
        if self._url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
            return False
        return not Path(database).is_file()

    def _layout(self, conn: Connection) -> _Layout:
        try:
            found = sa.inspect(conn).get_columns(self._table_name, schema=self._schema)
        except NoSuchTableError:
            raise SourceError(f"table {self._table_label!r} not found in the consent database") from None
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot inspect the consent table {self._table_label!r} ({_kind(exc)})") from None
        if not found:
            raise SourceError(f"table {self._table_label!r} not found in the consent database")
        types = {str(column["name"]): column["type"] for column in found}
        lowered: dict[str, list[str]] = {}
        for name in types:
            lowered.setdefault(name.lower(), []).append(name)
        resolved: dict[str, str | None] = {}
        for contract, wanted in self._columns.items():
            candidates = [wanted] if wanted in types else lowered.get(wanted.lower(), [])
            if len(candidates) == 1:
                resolved[contract] = candidates[0]
            elif contract in OPTIONAL_COLUMNS and not candidates:
                resolved[contract] = None
            else:
                raise SourceError(f"column {wanted!r} (for {contract}) missing from the consent table {self._table_label!r}")
        actual_names = sorted({name for name in resolved.values() if name is not None})
        table = sa.table(self._table_name, *(sa.column(name) for name in actual_names), schema=self._schema)
        person_column = str(resolved["person_id"])
        match, collate_c = self._person_match(conn, person_column, types[person_column])
        unique = self._unique_record_id(conn, str(resolved["record_id"]))
        relkind = self._relkind(conn, table)
        return _Layout(
            table=table, columns=resolved, person_match=match, collate_c=collate_c, unique_record_id=unique, relkind=relkind
        )

    def _relkind(self, conn: Connection, table: sa.TableClause) -> str | None:
        """PostgreSQL: what kind of relation the table is (pg_class.relkind); None on any other database."""
        if self._url.get_backend_name() != "postgresql":
            return None
        qualified = self._engine.dialect.identifier_preparer.format_table(table)
        try:
            kind = conn.execute(
                sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": qualified}
            ).scalar()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot inspect the consent table {self._table_label!r} ({_kind(exc)})") from None
        return None if kind is None else str(kind)

    def _person_match(self, conn: Connection, column: str, kind: object) -> tuple[str, bool]:
        """How to find a person's rows in this column (and, for PostgreSQL text, whether COLLATE "C" is needed)."""
        backend = self._url.get_backend_name()
        try:
            if backend == "sqlite":
                encoding = conn.exec_driver_sql("PRAGMA encoding").scalar()
                collation = getattr(kind, "collation", None)
                # The range probes assume UTF-8 text compared byte by byte (BINARY; NOCASE and RTRIM keep
                # whitespace below every letter and digit, so they are fine too).
                if encoding == "UTF-8" and (collation is None or str(collation).upper() in ("BINARY", "NOCASE", "RTRIM")):
                    return _SQLITE, False
                return _SCAN, False
            if backend == "postgresql":
                if isinstance(kind, sa.Integer):
                    return _INTEGER, False
                if isinstance(kind, sa.String) and not isinstance(kind, sa.Enum):
                    return _POSTGRES_TEXT, self._postgres_collation(conn, column) not in ("C", "POSIX")
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot inspect the consent table {self._table_label!r} ({_kind(exc)})") from None
        return _SCAN, False

    def _postgres_collation(self, conn: Connection, column: str) -> str | None:
        """The effective collation of a PostgreSQL column (the database's default when it names none)."""
        named = conn.execute(
            sa.text(
                "SELECT collation_name FROM information_schema.columns"
                " WHERE table_schema = coalesce(:schema, current_schema()) AND table_name = :table AND column_name = :column"
            ),
            {"schema": self._schema, "table": self._table_name, "column": column},
        ).scalar()
        if named is None:
            named = conn.execute(sa.text("SELECT datcollate FROM pg_database WHERE datname = current_database()")).scalar()
        return None if named is None else str(named)

    def _unique_record_id(self, conn: Connection, column: str) -> bool:
        """Whether a primary key, unique constraint or plain unique index holds the record id column alone."""
        inspector = sa.inspect(conn)
        try:
            if inspector.get_pk_constraint(self._table_name, schema=self._schema).get("constrained_columns") == [column]:
                return True
            for constraint in inspector.get_unique_constraints(self._table_name, schema=self._schema):
                if constraint.get("column_names") == [column]:
                    return True
            for index in inspector.get_indexes(self._table_name, schema=self._schema):
                partial = any(
                    key.endswith("_where") and value is not None for key, value in index.get("dialect_options", {}).items()
                )
                if index.get("unique") and index.get("column_names") == [column] and not partial and not index.get("expressions"):
                    return True
        except (SQLAlchemyError, NotImplementedError):
            return False  # a view, or a dialect that cannot tell: the duplicate query decides
        return False


def _kind(exc: SQLAlchemyError) -> str:
    """The exception's type name: the driver's own when wrapped (its message may quote values)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return type(exc.orig).__name__
    return type(exc).__name__


def _encode_watermark(fields: Mapping[str, object]) -> str:
    return json.dumps({"v": _WATERMARK_VERSION, **{k: v for k, v in fields.items() if k != "v"}}, sort_keys=True)


def _decode_watermark(watermark: str | None) -> dict[str, object] | None:
    if not watermark:
        return None
    try:
        fields = json.loads(watermark)
    except ValueError:
        return None
    if not isinstance(fields, dict) or fields.get("v") != _WATERMARK_VERSION:
        return None
    return fields


def _encode_value(value: object) -> dict[str, object]:
    """`updated_at`'s maximum as JSON, tagged with its type so it binds back the same way."""
    if value is None:
        return {"type": "none", "max": None}
    if isinstance(value, datetime):
        return {"type": "datetime", "max": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "max": value.isoformat()}
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return {"type": "text", "max": normalize_text(value)}
    return {"type": type(value).__name__, "max": value}


def _decode_value(fields: Mapping[str, object]) -> object:
    """Inverse of `_encode_value`; raises ValueError for anything it did not write."""
    kind, value = fields.get("type"), fields.get("max")
    if kind == "none" or value is None:
        return None
    if kind == "datetime" and isinstance(value, str):
        return datetime.fromisoformat(value)
    if kind == "date" and isinstance(value, str):
        return date.fromisoformat(value)
    if kind in ("str", "text") and isinstance(value, str):
        return value
    if kind == "int" and isinstance(value, int):
        return value
    if kind == "float" and isinstance(value, int | float):
        return float(value)
    raise ValueError("unusable watermark")


def _as_int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _oid(watch: _Watch) -> sa.ColumnElement[Any]:
    return sa.cast(sa.literal(watch.oid), OID)


def _postgres_counters(watch: _Watch) -> sa.Select[int, int, int]:
    """PostgreSQL's cumulative counts of rows inserted, updated and deleted in the table (no table access at all)."""
    oid = _oid(watch)
    return sa.select(
        sa.func.pg_stat_get_tuples_inserted(oid), sa.func.pg_stat_get_tuples_updated(oid), sa.func.pg_stat_get_tuples_deleted(oid)
    )


def _row_digest(values: tuple[Any, ...]) -> int:
    """A row's 64-bit digest: Python's hash of its values (keyed per process), plus a mark when its record id repeats."""
    try:
        digest = hash(values[:-1])
    except TypeError:  # a driver value that cannot be hashed (a list, a dict): hash its text instead
        digest = hash(repr(values[:-1]))
    return (digest + (_REPEATED_MARK if values[-1] is not None else 0)) & DIGEST_MASK


def _before(value: object, other: object) -> bool:
    """Whether `value` sorts before `other` (values of two kinds that do not compare count as before: start afresh)."""
    try:
        return bool(value < other)  # type: ignore[operator]
    except TypeError:
        return True
