"""The state store on SQLAlchemy Core (SQLite or PostgreSQL): runs, pending removals, watermark, audit trail and report.

Nothing stored names a person or a consent record in the clear: person and record ids are turned
into keyed pseudonyms on the way in. Every SQLAlchemy failure leaves as a `StateError` whose
message carries no SQL parameter, no URL and no password.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from flagsync.core.model import Attention, Flag, QuarantinedRecord, RunOutcome, RunTrigger
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import StateError
from flagsync.ports import AuditEvent, PendingRemoval, ReportRow, RunRecord

#: Bumped whenever the tables change shape; a store written by another version is refused.
SCHEMA_VERSION = "1"

#: The state store's files (database, WAL, shared memory, run lock) are the owner's alone: they hold
#: pseudonyms and One's involvement ids. A directory flagsync creates for them is the owner's alone too.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

#: How long an SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30

#: Stands in for the subject of a quarantined record that carried neither a record id nor a person id.
NO_SUBJECT = "-"

#: The triggers of runs that read the whole source and list the whole of One.
FULL_RUN_TRIGGERS = frozenset({RunTrigger.OPERATOR, RunTrigger.SCHEDULED_FULL, RunTrigger.DEMO})

_SCHEMA_VERSION_KEY = "schema_version"
_WATERMARK_KEY = "watermark"

#: Serialises first-use table creation across PostgreSQL replicas. It must differ from the run lock's
#: key: a run creates the tables while it holds the run lock, from another session.
_PG_SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"flagsync:schema").digest()[:8], "big", signed=True)

_T = TypeVar("_T")


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
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False, index=True),
    # The UTC day as YYYY-MM-DD, so that counting per day is the same plain GROUP BY on every backend.
    Column("day", String(10), nullable=False, index=True),
    Column("run_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("person", Text),
    Column("outcome", Text, nullable=False),
    Column("reason", Text),
)

report_rows = Table(
    "report_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


class SqlStateStore:
    """`StateStore` on SQLite (default) or PostgreSQL (``postgresql+psycopg://``); safe to share between threads.

    The tables are created on first use. Audit day ranges (`since`, `until`) are inclusive UTC days.
    """

    def __init__(self, url: str, pseudonymizer: Pseudonymizer) -> None:
        self._pseudonymizer = pseudonymizer
        self._url = parse_state_url(url)
        self._engine = _create_engine(self._url)
        # StaticPool shares one DBAPI connection; a private in-memory database is therefore used by one thread at a time.
        self._serial: AbstractContextManager[object] = threading.Lock() if _is_sqlite_memory(self._url) else nullcontext()
        self._ready = False
        self._ready_lock = threading.Lock()

    def describe(self) -> str:
        """The backend and database, safe to print and log (no password)."""
        return self._url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Release every pooled connection; the store can still be used afterwards (it reconnects)."""
        self._engine.dispose()

    # ------------------------------------------------------------------------------------------
    # Runs

    def start_run(self, trigger: RunTrigger, started_at: datetime) -> str:
        run_id = uuid.uuid4().hex
        _require_aware(started_at)
        stmt = insert(runs).values(run_id=run_id, trigger=trigger.value, started_at=started_at, counts_json="{}")
        self._run("start a run", lambda conn: conn.execute(stmt))
        return run_id

    def finish_run(self, run_id: str, outcome: RunOutcome, counts: Mapping[str, int], finished_at: datetime) -> None:
        _require_aware(finished_at)
        stmt = (
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(outcome=outcome.value, finished_at=finished_at, counts_json=json.dumps(dict(counts), sort_keys=True))
        )

        def finish(conn: Connection) -> None:
            if conn.execute(stmt).rowcount != 1:
                raise StateError("cannot finish a run the state store does not know")

        self._run("finish a run", finish)

    def abandon_unfinished(self) -> int:
        """Mark every run without an outcome as abandoned; return how many. Only a holder of the run lock may call this."""
        stmt = update(runs).where(runs.c.outcome.is_(None)).values(outcome=RunOutcome.ABANDONED.value)
        return self._run("mark abandoned runs", lambda conn: int(conn.execute(stmt).rowcount))

    def recent_runs(self, limit: int = 10) -> list[RunRecord]:
        stmt = select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id).limit(limit)
        rows = self._run("read recent runs", lambda conn: conn.execute(stmt).all())
        return [
            RunRecord(
                run_id=row.run_id,
                trigger=RunTrigger(row.trigger),
                started_at=row.started_at,
                finished_at=row.finished_at,
                outcome=RunOutcome(row.outcome) if row.outcome is not None else None,
                counts=_load_counts(row.counts_json),
            )
            for row in rows
        ]

    def run_history(self, since: date | None, until: date | None) -> list[RunRecord]:
        """Finished full runs (operator, scheduled and demo) that ended on the UTC days `since`..`until`, oldest first.

        Both ends are inclusive and either may be open. Person-scoped runs and change polls are left
        out: their counts describe a few people, not the whole of One.
        """
        stmt = (
            select(runs)
            .where(runs.c.finished_at.is_not(None), runs.c.trigger.in_([t.value for t in FULL_RUN_TRIGGERS]))
            .order_by(runs.c.finished_at, runs.c.run_id)
        )
        if since is not None:
            stmt = stmt.where(runs.c.finished_at >= _day_start(since))
        if until is not None:
            stmt = stmt.where(runs.c.finished_at < _day_start(until + timedelta(days=1)))
        rows = self._run("read the run history", lambda conn: conn.execute(stmt).all())
        return [_run_record(row) for row in rows]

    def last_success(self, trigger: RunTrigger | None = None) -> datetime | None:
        """When the latest converged run (of this trigger, if given) finished."""
        stmt = select(func.max(runs.c.finished_at)).where(runs.c.outcome == RunOutcome.CONVERGED.value)
        if trigger is not None:
            stmt = stmt.where(runs.c.trigger == trigger.value)
        value: datetime | None = self._run("read the last success", lambda conn: conn.execute(stmt).scalar_one_or_none())
        return value

    # ------------------------------------------------------------------------------------------
    # Pending and held removals

    def mark_pending(self, flag: Flag, at: datetime, *, held: bool = False) -> None:
        """Remember a removal not yet confirmed; marking it again counts one more attempt and sets `held` anew."""
        _require_aware(at)
        values = {
            "involvement_id": flag.involvement_id,
            "person": self._pseudonymizer.person(flag.person_id),
            "since": at,
            "attempts": 1,
            "held": held,
            "updated_at": at,
        }
        changes = {"attempts": pending_removals.c.attempts + 1, "held": held, "updated_at": at}
        self._run("remember a pending removal", lambda conn: _upsert(conn, pending_removals, values, changes))

    def clear_pending(self, involvement_id: str) -> None:
        stmt = delete(pending_removals).where(pending_removals.c.involvement_id == involvement_id)
        self._run("clear a pending removal", lambda conn: conn.execute(stmt))

    def pending_removals(self) -> list[PendingRemoval]:
        stmt = select(pending_removals).order_by(pending_removals.c.since, pending_removals.c.involvement_id)
        rows = self._run("read pending removals", lambda conn: conn.execute(stmt).all())
        return [
            PendingRemoval(
                involvement_id=row.involvement_id, person=row.person, since=row.since, attempts=row.attempts, held=bool(row.held)
            )
            for row in rows
        ]

    # ------------------------------------------------------------------------------------------
    # Audit trail

    def record_events(self, run_id: str, events: Sequence[tuple[str, str | None, str, str | None]], at: datetime) -> None:
        """Append audit events: (action, raw person id or None, outcome, reason code or None); only pseudonyms are kept."""
        if not events:
            return
        _require_aware(at)
        day = at.astimezone(UTC).date().isoformat()
        rows = [
            {
                "at": at,
                "day": day,
                "run_id": run_id,
                "action": action,
                "person": self._pseudonymizer.person(person_id) if person_id is not None else None,
                "outcome": outcome,
                "reason": reason,
            }
            for action, person_id, outcome, reason in events
        ]
        self._run("record audit events", lambda conn: conn.execute(insert(audit_events), rows))

    def audit_events(self, since: date | None, until: date | None) -> list[AuditEvent]:
        """Events on the UTC days from `since` to `until` (both inclusive, either open), oldest first."""
        stmt = select(audit_events).order_by(audit_events.c.at, audit_events.c.id)
        stmt = stmt.where(*_day_range(since, until))
        rows = self._run("read audit events", lambda conn: conn.execute(stmt).all())
        return [
            AuditEvent(at=row.at, run_id=row.run_id, action=row.action, person=row.person, outcome=row.outcome, reason=row.reason)
            for row in rows
        ]

    def audit_counts(self, since: date | None, until: date | None) -> list[tuple[date, str, str, int]]:
        """(UTC day, action, outcome, count) rows for the days from `since` to `until` (inclusive), ordered by day then action."""
        c = audit_events.c
        stmt = (
            select(c.day, c.action, c.outcome, func.count().label("n"))
            .where(*_day_range(since, until))
            .group_by(c.day, c.action, c.outcome)
            .order_by(c.day, c.action, c.outcome)
        )
        rows = self._run("count audit events", lambda conn: conn.execute(stmt).all())
        return [(date.fromisoformat(row.day), row.action, row.outcome, int(row.n)) for row in rows]

    def purge_audit(self, before: datetime) -> int:
        """Delete the events that happened before `before`; return how many went."""
        _require_aware(before)
        stmt = delete(audit_events).where(audit_events.c.at < before)
        return self._run("purge audit events", lambda conn: int(conn.execute(stmt).rowcount))

    # ------------------------------------------------------------------------------------------
    # Change-poll watermark

    def get_watermark(self) -> str | None:
        stmt = select(kv.c.value).where(kv.c.key == _WATERMARK_KEY)
        value: str | None = self._run("read the watermark", lambda conn: conn.execute(stmt).scalar_one_or_none())
        return value

    def set_watermark(self, watermark: str | None) -> None:
        def store(conn: Connection) -> None:
            _put(conn, _WATERMARK_KEY, watermark)

        self._run("store the watermark", store)

    # ------------------------------------------------------------------------------------------
    # The last full run's report

    def replace_report(
        self,
        quarantined: Sequence[QuarantinedRecord],
        unmatched: Sequence[str],
        attention: Sequence[Attention],
        person_issues: Sequence[tuple[str, str]],
    ) -> None:
        """Replace the stored report of the last full run, pseudonymising every record and person id."""
        person, record = self._pseudonymizer.person, self._pseudonymizer.record
        rows: list[dict[str, str]] = []
        for q in quarantined:
            if q.record_id is not None:
                subject = record(q.record_id)
            else:
                subject = person(q.person_id) if q.person_id is not None else NO_SUBJECT
            reason = q.reason.value + (":" + q.field if q.field else "")
            rows.append({"kind": "quarantined", "subject": subject, "reason": reason})
        rows += [{"kind": "unmatched", "subject": record(record_id), "reason": "NO_PERSON_ID"} for record_id in unmatched]
        rows += [{"kind": "attention", "subject": person(a.person_id), "reason": a.verdict.value} for a in attention]
        rows += [{"kind": "person_issue", "subject": person(person_id), "reason": issue} for person_id, issue in person_issues]

        def replace(conn: Connection) -> None:
            conn.execute(delete(report_rows))
            if rows:
                conn.execute(insert(report_rows), rows)

        self._run("replace the report", replace)

    def report(self) -> list[ReportRow]:
        stmt = select(report_rows).order_by(report_rows.c.id)
        rows = self._run("read the report", lambda conn: conn.execute(stmt).all())
        return [ReportRow(kind=row.kind, subject=row.subject, reason=row.reason) for row in rows]

    # ------------------------------------------------------------------------------------------
    # Plumbing

    def _run(self, what: str, work: Callable[[Connection], _T]) -> _T:
        """Run `work` in one transaction, translating every SQLAlchemy failure into a safe `StateError`."""
        with self._serial, _translated(what):
            self._ensure_schema()
            with self._engine.begin() as conn:
                return work(conn)

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Two replicas starting together must not both try to create the tables.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK_KEY})
                metadata.create_all(conn)
                found = conn.execute(select(kv.c.value).where(kv.c.key == _SCHEMA_VERSION_KEY)).scalar_one_or_none()
                if found is None:
                    conn.execute(insert(kv).values(key=_SCHEMA_VERSION_KEY, value=SCHEMA_VERSION))
                elif found != SCHEMA_VERSION:
                    raise StateError(f"the state store has schema version {found!r}; this flagsync needs {SCHEMA_VERSION!r}")
            self._ready = True


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn SQLAlchemy errors into a `StateError` naming only the operation and the error class.

    The original is not chained: driver messages can quote stored values and connection details.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        raise StateError(f"state store failed to {what} ({_summary(exc)})") from None


def _summary(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    sqlstate = getattr(orig, "sqlstate", None)
    return f"{name}, SQLSTATE {sqlstate}" if isinstance(sqlstate, str) else name


def parse_state_url(url: str) -> URL:
    """The state store URL parsed, or a StateError that does not echo it."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise StateError("the state store URL is not a valid SQLAlchemy URL") from None


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and sqlite_file_path(url) is None


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


def _create_engine(url: URL) -> Engine:
    try:
        if url.get_backend_name() != "sqlite":
            return create_engine(url, hide_parameters=True, pool_pre_ping=True)
        path = sqlite_file_path(url)
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        if path is None:
            engine = create_engine(url, hide_parameters=True, connect_args=connect_args, poolclass=StaticPool)
        else:
            create_private_file(path)
            engine = create_engine(url, hide_parameters=True, connect_args=connect_args)
    except (SQLAlchemyError, ImportError, OSError) as exc:
        raise StateError(f"cannot set up the state store ({type(exc).__name__})") from None
    _tune_sqlite(engine, wal=path is not None)
    return engine


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


def _tune_sqlite(engine: Engine, *, wal: bool) -> None:
    """WAL and a busy timeout on every connection, and transactions that take the write lock up front.

    pysqlite's own transaction handling begins lazily and skips DDL; a deferred transaction that
    reads and then writes can fail at once with "database is locked" instead of waiting. BEGIN
    IMMEDIATE waits (up to the busy timeout) for the lock before the first statement.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below issues BEGIN itself
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("state store timestamps must be timezone-aware")


def _day_range(since: date | None, until: date | None) -> list[Any]:
    conditions: list[Any] = []
    if since is not None:
        conditions.append(audit_events.c.day >= since.isoformat())
    if until is not None:
        conditions.append(audit_events.c.day <= until.isoformat())
    return conditions


def _put(conn: Connection, key: str, value: str | None) -> None:
    if value is None:
        conn.execute(delete(kv).where(kv.c.key == key))
    else:
        _upsert(conn, kv, {"key": key, "value": value}, {"value": value})


def _upsert(conn: Connection, table: Table, values: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
    """Insert a row, or apply `changes` to the row with the same primary key, atomically."""
    keys = list(table.primary_key.columns)
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        ins = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table).values(**values)
        conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=dict(changes)))
        return
    where = [column == values[column.name] for column in keys]
    if conn.execute(update(table).where(*where).values(**changes)).rowcount == 0:
        conn.execute(insert(table).values(**values))


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        trigger=RunTrigger(row.trigger),
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=RunOutcome(row.outcome) if row.outcome is not None else None,
        counts=_load_counts(row.counts_json),
    )


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _load_counts(raw: str) -> dict[str, int]:
    loaded = json.loads(raw)
    return {str(k): int(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
