"""Change detection on the consent table: the probe, the change queries (by `updated_at` or by digests), their watermarks.

`SqlConsentSource.changes_since` is called by the daemon every change poll, every second by default.
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
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import OID
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from flagsync.adapters.sql.engine import BATCH_SIZE, ConsentDatabase, error_kind
from flagsync.adapters.sql.layout import Layout
from flagsync.core.digests import DIGEST_MASK, PersonDigests
from flagsync.core.records import normalize_person_id, normalize_text
from flagsync.errors import SourceError
from flagsync.ports import Changes

_WATERMARK_VERSION = 1

#: Where the database offers no change probe, a full change query is run at most this often relative
#: to its own duration (a query that took 10 ms waits 190 ms), so that watching costs at most 5%.
UNPROBED_DUTY = 0.05

# Added to a row's digest when its record id occurs more than once (the duplicate mark decides its person too).
_REPEATED_MARK = 0x9E37_79B9_7F4A_7C15


@dataclass(frozen=True, slots=True)
class Watch:
    """What the change probe needs to know about the table, from the last full look at it."""

    layout: Layout
    oid: int | None  # PostgreSQL only

    @property
    def has_counters(self) -> bool:
        """PostgreSQL keeps per-table row counters for a plain table (not a view, nor a partitioned parent)."""
        return self.layout.relkind == "r"


class ChangeProbe:
    """The change probe: its own connection, and what the last full look at the table found (see the module docstring)."""

    def __init__(self, database: ConsentDatabase) -> None:
        self._database = database
        self._watch: Watch | None = None
        self._conn: Connection | None = None
        self._file: tuple[int, int] | None = None
        self._generation = 0

    def kind(self) -> str | None:
        """Which probe this database has: SQLite's data_version, PostgreSQL's index and statistics, or none."""
        backend = self._database.backend
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

    def value(self) -> object:
        """A value that changes whenever a change may have been committed; None when there is no probe (yet)."""
        kind = self.kind()
        if kind is None:
            return None
        conn = self._connection()
        try:
            if kind == "sqlite":
                return (self._generation, conn.exec_driver_sql("PRAGMA data_version").scalar())
            watch = self._watch
            assert watch is not None
            if watch.layout.columns["updated_at"] is not None:
                return (self._generation, *conn.execute(_postgres_newest(watch)).one())
            return (self._generation, *conn.execute(_postgres_counters(watch)).one())
        except SQLAlchemyError as exc:
            self.close()
            self._watch = None  # look at the table afresh next time
            raise SourceError(
                f"cannot read changes from the consent table {self._database.table_label!r} ({error_kind(exc)})"
            ) from None

    def look(self, conn: Connection, layout: Layout) -> Watch:
        """Take in the table as a change query found it (`layout`, and on PostgreSQL its oid)."""
        self._watch = Watch(layout, self._table_oid(conn, layout))
        return self._watch

    def forget(self) -> None:
        """Look at the table afresh next time (a change query failed)."""
        self._watch = None

    def close(self) -> None:
        """Close the probe's connection (a later probe opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):  # being thrown away: a failure to close changes nothing
                conn.close()

    def _connection(self) -> Connection:
        """The probe's own connection, kept open (SQLite's data_version counts other connections' commits to this one)."""
        database = self._database
        identity = database.sqlite_file_identity()
        if self._conn is not None and identity == self._file:
            return self._conn
        self.close()  # first use, or the database file was replaced: a new connection sees the new file
        try:
            self._conn = database.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot connect to the consent database {database.safe_url} ({error_kind(exc)})") from None
        self._file = identity
        self._generation += 1
        return self._conn

    def _table_oid(self, conn: Connection, layout: Layout) -> int | None:
        """PostgreSQL: the table's oid (for its statistics counters); None on any other database."""
        database = self._database
        if database.backend != "postgresql":
            return None
        qualified = database.engine.dialect.identifier_preparer.format_table(layout.table)
        try:
            oid = conn.execute(sa.select(sa.cast(sa.func.to_regclass(qualified), OID))).scalar()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot inspect the consent table {database.table_label!r} ({error_kind(exc)})") from None
        return None if oid is None else int(oid)


def changes_by_updated_at(conn: Connection, watch: Watch, watermark: str | None, label: str) -> Changes:
    """With updated_at: the people of the rows stamped after the watermark's maximum, up to the newest now."""
    previous = _decode_watermark(watermark)
    layout = watch.layout
    updated_at = layout.column("updated_at")
    count: int | None = None
    deleted: int | None = None
    try:
        if watch.oid is not None:
            # PostgreSQL: the newest updated_at through its index, and the table's count of deleted rows.
            newest, deleted = conn.execute(_postgres_newest(watch)).one()
        else:
            # count(*) shows deletions; it is a scan of the smallest index (SQLite) and runs only after a commit.
            count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(updated_at)).select_from(layout.table)).one()
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot read changes from the consent table {label!r} ({error_kind(exc)})") from None
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
        raise SourceError(f"cannot read changes from the consent table {label!r} ({error_kind(exc)})") from None
    return Changes(person_ids=people, watermark=current)


class DigestVersions:
    """Without updated_at: the per-person digests of the versions a caller may still name (this process's only)."""

    def __init__(self) -> None:
        self._versions: dict[str, PersonDigests] = {}
        self._last_diff: tuple[str, str, frozenset[str]] | None = None
        self._process_key = uuid.uuid4().hex[:16]  # digest watermarks hold Python hashes, meaningful in this process only

    def changes(self, conn: Connection, records: sa.Select[tuple[object, ...]], watermark: str | None, label: str) -> Changes:
        """Read the mapped columns once (`records`, the whole read's query); diff per-person digests with the caller's."""
        digests = PersonDigests()
        total = 0
        add = digests.add
        try:
            for row in conn.execution_options(stream_results=True, yield_per=BATCH_SIZE).execute(records):
                values: tuple[Any, ...] = tuple(row)
                person_id = normalize_person_id(values[1])
                if person_id is None:
                    continue  # a row naming nobody decides no one's flag
                row_digest = _row_digest(values)
                total += row_digest
                add(person_id, row_digest)
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read the consent table {label!r} ({error_kind(exc)})") from None
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


def _oid(watch: Watch) -> sa.ColumnElement[Any]:
    return sa.cast(sa.literal(watch.oid), OID)


def _postgres_newest(watch: Watch) -> sa.Select[object, int]:
    """PostgreSQL's newest updated_at (one step in its index) and the table's count of deleted rows."""
    layout = watch.layout
    newest = sa.select(sa.func.max(layout.column("updated_at"))).select_from(layout.table).scalar_subquery()
    return sa.select(newest, sa.func.pg_stat_get_tuples_deleted(_oid(watch)))


def _postgres_counters(watch: Watch) -> sa.Select[int, int, int]:
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
