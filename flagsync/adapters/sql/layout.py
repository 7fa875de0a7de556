"""The consent table as found: the column of each contract field, unique record ids or not, and how a person's rows are found.

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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from flagsync.adapters.sql.engine import ConsentDatabase, error_kind
from flagsync.core.records import OPTIONAL_COLUMNS
from flagsync.errors import SourceError

#: How a person's rows are found (see the module docstring): SQLite probes, PostgreSQL probes on a
#: text column, equality on an integer column, or (anything else) reading every row and keeping theirs.
_SQLITE, _POSTGRES_TEXT, _INTEGER, _SCAN = "sqlite", "postgresql-text", "integer", "scan"

# Every character Python's str.strip() removes lies in one of these two ranges (tests check it).
_ASCII_SPACE_FIRST, _ASCII_SPACE_LAST = "\t", " "
_WIDE_SPACE_FIRST, _WIDE_SPACE_LAST = "\x85", "\u3000"

_PLAIN_INT = re.compile(r"0|[1-9][0-9]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class Layout:
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

    def person_condition(self, person_id: str) -> sa.ColumnElement[bool] | None:
        """An index-backed condition selecting at least every row `read_all` attributes to `person_id`.

        None means "no condition": every row is read and the parsed person id decides (the fallback).
        """
        column = self.column("person_id")
        if self.person_match == _INTEGER:
            # An integer's text never carries padding; only the canonical digits can name the person.
            return column == int(person_id) if _PLAIN_INT.fullmatch(person_id) else sa.false()
        if self.person_match == _SCAN:
            return None
        compared: sa.ColumnElement[Any] = column.collate("C") if self.collate_c else column
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
        if self.person_match == _SQLITE:
            # SQLite keeps any value in any column: blobs sort after all text, and a number's text
            # can name a person only as its canonical form ("123", or "inf" for an infinite real).
            terms.append(column >= sa.literal(b"", sa.LargeBinary()))
            if _PLAIN_INT.fullmatch(person_id):
                terms.append(column == sa.literal(int(person_id), sa.Integer()))
            if person_id == "inf":
                terms.append(column == sa.literal(float("inf"), sa.Float()))
        return sa.or_(*terms)


def inspect_layout(conn: Connection, database: ConsentDatabase, columns: Mapping[str, str]) -> Layout:
    """The consent table's layout, for the contract column → source column mapping `columns`.

    Raises SourceError when the table is missing, cannot be inspected, or lacks a mapped column.
    """
    label = database.table_label
    try:
        found = sa.inspect(conn).get_columns(database.table_name, schema=database.schema)
    except NoSuchTableError:
        raise SourceError(f"table {label!r} not found in the consent database") from None
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot inspect the consent table {label!r} ({error_kind(exc)})") from None
    if not found:
        raise SourceError(f"table {label!r} not found in the consent database")
    types = {str(column["name"]): column["type"] for column in found}
    lowered: dict[str, list[str]] = {}
    for name in types:
        lowered.setdefault(name.lower(), []).append(name)
    resolved: dict[str, str | None] = {}
    for contract, wanted in columns.items():
        candidates = [wanted] if wanted in types else lowered.get(wanted.lower(), [])
        if len(candidates) == 1:
            resolved[contract] = candidates[0]
        elif contract in OPTIONAL_COLUMNS and not candidates:
            resolved[contract] = None
        else:
            raise SourceError(f"column {wanted!r} (for {contract}) missing from the consent table {label!r}")
    actual_names = sorted({name for name in resolved.values() if name is not None})
    table = sa.table(database.table_name, *(sa.column(name) for name in actual_names), schema=database.schema)
    person_column = str(resolved["person_id"])
    match, collate_c = _person_match(conn, database, person_column, types[person_column])
    unique = _unique_record_id(conn, database, str(resolved["record_id"]))
    relkind = _relkind(conn, database, table)
    return Layout(
        table=table, columns=resolved, person_match=match, collate_c=collate_c, unique_record_id=unique, relkind=relkind
    )


def _relkind(conn: Connection, database: ConsentDatabase, table: sa.TableClause) -> str | None:
    """PostgreSQL: what kind of relation the table is (pg_class.relkind); None on any other database."""
    if database.backend != "postgresql":
        return None
    qualified = database.engine.dialect.identifier_preparer.format_table(table)
    try:
        kind = conn.execute(sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": qualified}).scalar()
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot inspect the consent table {database.table_label!r} ({error_kind(exc)})") from None
    return None if kind is None else str(kind)


def _person_match(conn: Connection, database: ConsentDatabase, column: str, kind: object) -> tuple[str, bool]:
    """How to find a person's rows in this column (and, for PostgreSQL text, whether COLLATE "C" is needed)."""
    backend = database.backend
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
                return _POSTGRES_TEXT, _postgres_collation(conn, database, column) not in ("C", "POSIX")
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot inspect the consent table {database.table_label!r} ({error_kind(exc)})") from None
    return _SCAN, False


def _postgres_collation(conn: Connection, database: ConsentDatabase, column: str) -> str | None:
    """The effective collation of a PostgreSQL column (the database's default when it names none)."""
    named = conn.execute(
        sa.text(
            "SELECT collation_name FROM information_schema.columns"
            " WHERE table_schema = coalesce(:schema, current_schema()) AND table_name = :table AND column_name = :column"
        ),
        {"schema": database.schema, "table": database.table_name, "column": column},
    ).scalar()
    if named is None:
        named = conn.execute(sa.text("SELECT datcollate FROM pg_database WHERE datname = current_database()")).scalar()
    return None if named is None else str(named)


def _unique_record_id(conn: Connection, database: ConsentDatabase, column: str) -> bool:
    """Whether a primary key, unique constraint or plain unique index holds the record id column alone."""
    inspector = sa.inspect(conn)
    table, schema = database.table_name, database.schema
    try:
        if inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") == [column]:
            return True
        for constraint in inspector.get_unique_constraints(table, schema=schema):
            if constraint.get("column_names") == [column]:
                return True
        for index in inspector.get_indexes(table, schema=schema):
            partial = any(key.endswith("_where") and value is not None for key, value in index.get("dialect_options", {}).items())
            if index.get("unique") and index.get("column_names") == [column] and not partial and not index.get("expressions"):
                return True
    except (SQLAlchemyError, NotImplementedError):
        return False  # a view, or a dialect that cannot tell: the duplicate query decides
    return False
