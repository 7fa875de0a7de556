"""Reads consent records from a SQL table or view through SQLAlchemy Core, selecting only the contract's columns.

Privacy: only the mapped contract columns are ever named in a SELECT, so names, addresses, notes
and anything else the table holds are never read. Errors become `SourceError` with a message
built here (what failed and the exception type), never the driver's text, which can quote SQL
parameters or the URL; the engine also hides parameters from SQLAlchemy's own messages.

Streaming: rows come from a server-side cursor where the driver has one (PostgreSQL), in batches
of `BATCH_SIZE`, so a large table never sits in memory at once.

Duplicate record ids are found by the database itself (GROUP BY record id HAVING COUNT(*) > 1,
joined back onto the rows in the same statement, so every occurrence is quarantined). They are
compared as stored, with the database's own equality.

Change detection (`changes_since`), chosen by whether the table has an `updated_at` column:

- with it, the watermark holds the row count and the largest `updated_at` seen; a poll returns
  the people of rows whose `updated_at` lies after the old maximum (up to the new one, so rows
  written during the poll are picked up next time). If the row count fell (rows deleted), or the
  watermark is absent or from another mode, the answer is "full reconcile" (`person_ids=None`).
  Not visible to this fast path, and left to the periodic full reconcile: rows with an empty
  `updated_at`, rows written with an `updated_at` older than the watermark, a deletion offset by
  inserts in the same interval, and the person a row was moved away from. Text `updated_at`
  columns are compared as text, so they must be written in one consistent ISO format.
- without it, the watermark is a fingerprint of the mapped columns (row count and an
  order-independent sum of per-row SHA-256 digests), computed by streaming the table; any
  change answers "full reconcile", no change answers "nobody".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError

from flagsync.core.model import SourceItem, is_valid_person_id
from flagsync.core.records import OPTIONAL_COLUMNS, normalize_person_id, normalize_text, parse_record, resolve_column_map
from flagsync.errors import ConfigError, SourceError
from flagsync.ports import Changes

#: Rows fetched from the database per round trip while streaming.
BATCH_SIZE = 1000

_DEFAULT_ZONE = "Europe/London"
_DUPLICATE_MARK = "flagsync_duplicate_of"
_WATERMARK_VERSION = 1
_DIGEST_MODULUS = 2**256


@dataclass(frozen=True, slots=True)
class _Layout:
    """The table as found: contract column → actual source column (None for an absent optional one)."""

    table: sa.TableClause
    columns: Mapping[str, str | None]
    textual_person_id: bool

    def column(self, name: str) -> sa.ColumnClause[object]:
        actual = self.columns[name]
        if actual is None:
            raise KeyError(name)
        return self.table.c[actual]

    def present(self) -> list[tuple[str, str]]:
        return [(name, actual) for name, actual in self.columns.items() if actual is not None]


class SqlConsentSource:
    """A `ConsentSource` over a table or view in any database SQLAlchemy supports.

    `url` is a SQLAlchemy URL (``postgresql://`` means the psycopg 3 driver); `table` may be
    ``schema.table``; `columns` maps contract names to the table's column names (identity by
    default); `zone` is the zone of naive timestamps (Europe/London by default). Nothing connects
    until a method is called. Raises ConfigError for a bad URL, a missing driver or an unknown
    contract name in `columns`.
    """

    def __init__(self, url: str, table: str, columns: Mapping[str, str] | None = None, zone: ZoneInfo | None = None) -> None:
        self._columns = resolve_column_map(columns)
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

    # ------------------------------------------------------------------------------------------
    # ConsentSource

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        """Every record, streamed; raises SourceError when the table cannot be read."""
        return self._read(now, person_id=None)

    def read_person(self, person_id: str, now: datetime) -> Iterator[SourceItem]:
        """Every record naming this person id (compared without surrounding spaces)."""
        if not is_valid_person_id(person_id):
            return iter(())  # no record can name a malformed id, and it never goes near SQL
        return self._read(now, person_id=person_id)

    def changes_since(self, watermark: str | None) -> Changes:
        """Which people changed since `watermark` (see the module docstring for how)."""
        with self._connection() as conn:
            layout = self._layout(conn)
            if layout.columns["updated_at"] is not None:
                return self._changes_by_updated_at(conn, layout, _decode_watermark(watermark))
            return self._changes_by_fingerprint(conn, layout, _decode_watermark(watermark))

    def describe(self) -> str:
        return f"sql table {self._table_label} on {self._safe_url}"

    def close(self) -> None:
        """Release pooled connections (for shutdown and tests)."""
        self._engine.dispose()

    # ------------------------------------------------------------------------------------------
    # Reading

    def _read(self, now: datetime, person_id: str | None) -> Iterator[SourceItem]:
        with self._connection() as conn:
            layout = self._layout(conn)
            statement = self._select_records(layout, person_id)
            try:
                result = conn.execution_options(stream_results=True, yield_per=BATCH_SIZE).execute(statement)
                for row in result:
                    values = row._mapping
                    item = parse_record(
                        {name: values[name] for name, _ in layout.present()},
                        now=now,
                        zone=self._zone,
                        duplicate=values[_DUPLICATE_MARK] is not None,
                    )
                    if person_id is None or item.person_id == person_id:
                        yield item
            except SQLAlchemyError as exc:
                raise SourceError(f"cannot read the consent table {self._table_label!r} ({_kind(exc)})") from None

    def _select_records(self, layout: _Layout, person_id: str | None) -> sa.Select[tuple[object, ...]]:
        rows = layout.table
        record_id = layout.column("record_id")
        # The same table again under other names, for the duplicate query joined onto the rows.
        counted = layout.table.alias("flagsync_counted")
        counted_id = counted.c[record_id.name]
        duplicates = sa.select(counted_id.label("record_id")).group_by(counted_id).having(sa.func.count() > 1)
        if person_id is not None:
            own = layout.table.alias("flagsync_own")
            own_ids = sa.select(own.c[record_id.name]).where(
                self._person_matches(layout, own.c[layout.column("person_id").name], person_id)
            )
            duplicates = duplicates.where(counted_id.in_(own_ids))
        duplicated = duplicates.subquery("flagsync_duplicates")
        statement = sa.select(
            *(rows.c[actual].label(name) for name, actual in layout.present()),
            duplicated.c.record_id.label(_DUPLICATE_MARK),
        ).select_from(rows.outerjoin(duplicated, record_id == duplicated.c.record_id))
        if person_id is not None:
            statement = statement.where(self._person_matches(layout, layout.column("person_id"), person_id))
        return statement

    def _person_matches(self, layout: _Layout, column: sa.ColumnClause[object], person_id: str) -> sa.ColumnElement[bool]:
        # Stored ids may carry padding (CHAR columns, careless exports) that the parser strips.
        if layout.textual_person_id:
            return sa.func.ltrim(sa.func.rtrim(column)) == person_id
        return column == person_id

    # ------------------------------------------------------------------------------------------
    # Changes

    def _changes_by_updated_at(self, conn: Connection, layout: _Layout, previous: dict[str, object] | None) -> Changes:
        updated_at = layout.column("updated_at")
        try:
            count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(updated_at)).select_from(layout.table)).one()
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read changes from the consent table {self._table_label!r} ({_kind(exc)})") from None
        current = _encode_watermark({"mode": "updated_at", "count": count, **_encode_value(newest)})
        if previous is None or previous.get("mode") != "updated_at" or _as_int(previous.get("count")) > count:
            return Changes(person_ids=None, watermark=current)  # first poll, another mode, or rows deleted
        try:
            since = _decode_value(previous)
        except ValueError:
            return Changes(person_ids=None, watermark=current)  # a watermark we cannot use: start afresh
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

    def _changes_by_fingerprint(self, conn: Connection, layout: _Layout, previous: dict[str, object] | None) -> Changes:
        statement = sa.select(*(layout.table.c[actual] for _, actual in layout.present()))
        total = 0
        count = 0
        try:
            for row in conn.execution_options(stream_results=True, yield_per=BATCH_SIZE).execute(statement):
                canonical = json.dumps([[type(value).__name__, str(value)] for value in row], ensure_ascii=True)
                total = (total + int.from_bytes(hashlib.sha256(canonical.encode()).digest(), "big")) % _DIGEST_MODULUS
                count += 1
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read the consent table {self._table_label!r} ({_kind(exc)})") from None
        current = _encode_watermark({"mode": "fingerprint", "count": count, "digest": f"{total:064x}"})
        if previous is not None and _encode_watermark(previous) == current:
            return Changes(person_ids=frozenset(), watermark=current)
        return Changes(person_ids=None, watermark=current)

    # ------------------------------------------------------------------------------------------
    # Connecting and finding the table

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        if self._missing_sqlite_file():
            raise SourceError(f"the consent database file does not exist: {self._url.database}")
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
        person_type = types[str(resolved["person_id"])]
        textual = self._url.get_backend_name() == "sqlite" or isinstance(person_type, sa.String | sa.types.NullType)
        return _Layout(table=table, columns=resolved, textual_person_id=textual)


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
