"""`SqlStateStore`: runs, pending removals, the hash-chained audit trail, the watermark and the last full run's report.

Nothing stored names a person or a consent record in the clear: person and record ids are turned
into keyed pseudonyms on the way in, each stored with the id of the key that made it. A writing
store creates the tables of an empty database (at the newest revision) but never migrates an
older one: that is `flagsync migrate`. A read-only store never creates, migrates or writes anything.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from flagsync.adapters.state import chain, db
from flagsync.adapters.state.engine import (
    create_reader_engine,
    create_writer_engine,
    describe_url,
    parse_state_url,
    prepare_for_writing,
    sqlite_file_path,
    translated,
)
from flagsync.adapters.state.migrate import (
    PG_SCHEMA_LOCK_KEY,
    SchemaVersion,
    UnknownSchema,
    current_revision,
    schema_version,
    upgrade,
)
from flagsync.adapters.state.schema import (
    HEAD_REVISION,
    WATERMARK_KEY,
    audit_events,
    kv,
    pending_removals,
    person_refusals,
    report_rows,
    runs,
)
from flagsync.core.model import Attention, Flag, QuarantinedRecord, Refusal, RunOutcome, RunTrigger
from flagsync.core.pseudonym import Keyring, Pseudonymizer
from flagsync.errors import StateError
from flagsync.ports import AuditEntry, AuditEvent, ChainCheck, PendingRemoval, ReportRow, RunRecord

#: Stands in for the subject of a quarantined record that carried neither a record id nor a person id.
NO_SUBJECT = "-"

#: The triggers of runs that read the whole source and list the whole of One.
FULL_RUN_TRIGGERS = frozenset({RunTrigger.OPERATOR, RunTrigger.SCHEDULED_FULL, RunTrigger.DEMO})

#: Events read per round trip while verifying the chain.
_VERIFY_BATCH = 2000

_T = TypeVar("_T")


class SqlStateStore:
    """The state store on SQLite (default) or PostgreSQL (``postgresql+psycopg://``); safe to share between threads.

    `keys` is the keyring (or a single pseudonymizer): the current key pseudonymises and signs, the
    previous ones are read with. `read_only=True` opens SQLite `mode=ro` and PostgreSQL sessions
    read-only; a database that does not exist yet then reads as empty. Audit day ranges (`since`,
    `until`) are inclusive UTC days.
    """

    def __init__(self, url: str, keys: Pseudonymizer | Keyring, *, read_only: bool = False) -> None:
        self._keys = Keyring.of(keys)
        self._url = parse_state_url(url)
        self._path = sqlite_file_path(self._url) if self._url.get_backend_name() == "sqlite" else None
        self._read_only = read_only
        self._engine = create_reader_engine(self._url) if read_only else create_writer_engine(self._url)
        # StaticPool shares one DBAPI connection; a private in-memory database is therefore used by one thread at a time.
        memory = self._url.get_backend_name() == "sqlite" and self._path is None
        self._serial: AbstractContextManager[object] = threading.Lock() if memory else nullcontext()
        self._ready = False
        self._ready_lock = threading.Lock()
        #: False for a read-only store over a database no run has written yet (it reads as empty).
        self.exists = True

    def describe(self) -> str:
        """The backend and database, safe to print and log (no password)."""
        return describe_url(self._url)

    def close(self) -> None:
        """Release every pooled connection; the store can still be used afterwards (it reconnects)."""
        self._engine.dispose()

    # ------------------------------------------------------------------------------------------
    # Schema

    def migrate(self) -> SchemaVersion:
        """Bring the schema to the newest revision (signing existing events into the chain); return where it was."""
        if self._read_only:
            raise StateError("a read-only state store cannot be migrated")
        if self._path is not None:
            prepare_for_writing(self._path)
        with self._serial, translated("migrate the schema", self._path), self._engine.begin() as conn:
            try:
                found = upgrade(conn, self._keys)
            except UnknownSchema as exc:
                raise self._unknown(exc.revision) from None
        self._ready = True
        return found

    def check_schema(self) -> None:
        """Raise StateError unless the schema is this code's (a writing store creates an empty database at it)."""
        with self._serial, translated("read the schema", self._path):
            self._ensure_schema()

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            if not self._read_only and self._path is not None:
                prepare_for_writing(self._path)
            if self._read_only and self._path is not None and not self._path.exists():
                self._read_empty()
            else:
                with self._engine.begin() as conn:
                    if conn.dialect.name == "postgresql" and not self._read_only:
                        # Two replicas starting together on an empty database must not both create the tables.
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK_KEY})
                    found = schema_version(conn)
                    if found.revision is None and not self._read_only:
                        upgrade(conn, self._keys)  # an empty database: created at the newest revision
                    elif found.revision is not None:
                        self._require_current(found)
                if found.revision is None and self._read_only:
                    self._read_empty()
            self._ready = True

    def _read_empty(self) -> None:
        """Serve reads from an empty store: a read-only command never creates the real one."""
        self._engine.dispose()
        self._engine = create_writer_engine(parse_state_url("sqlite://"))
        self._serial = threading.Lock()
        with self._engine.begin() as conn:
            upgrade(conn, self._keys)
        self.exists = False

    def _require_current(self, found: SchemaVersion) -> None:
        if found.current:
            return
        if not found.known:
            raise self._unknown(found.revision)
        raise StateError(
            f"the state store {self.describe()} is at schema revision {found.revision} (written by an older flagsync); "
            f"run `flagsync migrate` to bring it to {HEAD_REVISION} (back it up first: see docs/runbook.md)"
        )

    def _unknown(self, revision: str | None) -> StateError:
        return StateError(
            f"the state store {self.describe()} is at schema revision {revision}, which this flagsync does not know "
            f"(it needs {HEAD_REVISION}; was the store migrated by a newer flagsync?)"
        )

    # ------------------------------------------------------------------------------------------
    # Runs

    def start_run(self, trigger: RunTrigger, started_at: datetime) -> str:
        run_id = uuid.uuid4().hex
        db.require_aware(started_at)
        stmt = insert(runs).values(run_id=run_id, trigger=trigger.value, started_at=started_at, counts_json="{}")

        def start(conn: Connection) -> None:
            # Checked every run, not only at start-up: a store migrated meanwhile by a newer flagsync is not written.
            revision = current_revision(conn)
            if revision != HEAD_REVISION:
                raise self._unknown(revision)
            conn.execute(stmt)

        self._write("start a run", start)
        return run_id

    def finish_run(self, run_id: str, outcome: RunOutcome, counts: Mapping[str, int], finished_at: datetime) -> None:
        db.require_aware(finished_at)
        stmt = (
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(outcome=outcome.value, finished_at=finished_at, counts_json=json.dumps(dict(counts), sort_keys=True))
        )

        def finish(conn: Connection) -> None:
            if conn.execute(stmt).rowcount != 1:
                raise StateError("cannot finish a run the state store does not know")

        self._write("finish a run", finish)

    def abandon_unfinished(self) -> int:
        """Mark every run without an outcome as abandoned; return how many. Only a holder of the run lock may call this."""
        stmt = update(runs).where(runs.c.outcome.is_(None)).values(outcome=RunOutcome.ABANDONED.value)
        return self._write("mark abandoned runs", lambda conn: int(conn.execute(stmt).rowcount))

    def recent_runs(self, limit: int = 10) -> list[RunRecord]:
        stmt = select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id).limit(limit)
        return [db.run_record(row) for row in self._read("read recent runs", lambda conn: conn.execute(stmt).all())]

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
            stmt = stmt.where(runs.c.finished_at >= db.day_start(since))
        if until is not None:
            stmt = stmt.where(runs.c.finished_at < db.day_start(until + timedelta(days=1)))
        return [db.run_record(row) for row in self._read("read the run history", lambda conn: conn.execute(stmt).all())]

    def last_success(self, trigger: RunTrigger | None = None) -> datetime | None:
        """When the latest converged run (of this trigger, if given) finished."""
        stmt = select(func.max(runs.c.finished_at)).where(runs.c.outcome == RunOutcome.CONVERGED.value)
        if trigger is not None:
            stmt = stmt.where(runs.c.trigger == trigger.value)
        value: datetime | None = self._read("read the last success", lambda conn: conn.execute(stmt).scalar_one_or_none())
        return value

    # ------------------------------------------------------------------------------------------
    # Pending and held removals

    def mark_pending(self, flag: Flag, at: datetime, *, held: bool = False) -> None:
        """Remember a removal not yet confirmed; marking it again counts one more attempt and sets `held` anew.

        The pseudonym is written anew each time, with the current key: after a rotation, a pending
        removal moves to the new key the next time it is tried.
        """
        db.require_aware(at)
        key = self._keys.current
        person = key.person(flag.person_id)
        values = {
            "involvement_id": flag.involvement_id,
            "person": person,
            "since": at,
            "attempts": 1,
            "held": held,
            "updated_at": at,
            "key_id": key.key_id,
        }
        changes = {
            "attempts": pending_removals.c.attempts + 1,
            "held": held,
            "updated_at": at,
            "person": person,
            "key_id": key.key_id,
        }
        self._write("remember a pending removal", lambda conn: db.upsert(conn, pending_removals, values, changes))

    def clear_pending(self, involvement_id: str) -> None:
        stmt = delete(pending_removals).where(pending_removals.c.involvement_id == involvement_id)
        self._write("clear a pending removal", lambda conn: conn.execute(stmt))

    def pending_removals(self) -> list[PendingRemoval]:
        stmt = select(pending_removals).order_by(pending_removals.c.since, pending_removals.c.involvement_id)
        rows = self._read("read pending removals", lambda conn: conn.execute(stmt).all())
        return [
            PendingRemoval(row.involvement_id, row.person, row.since, row.attempts, bool(row.held), row.key_id) for row in rows
        ]

    # ------------------------------------------------------------------------------------------
    # People One refused

    def record_refusal(self, person_id: str, refusal: Refusal) -> None:
        """Remember that One refused this person, until `refusal.retry_at` (under the current key's pseudonym)."""
        db.require_aware(refusal.retry_at)
        key = self._keys.current
        values = {"person": key.person(person_id), "key_id": key.key_id, "reason": refusal.reason, "retry_at": refusal.retry_at}
        changes = {"reason": refusal.reason, "retry_at": refusal.retry_at}
        self._write("remember a refused person", lambda conn: db.upsert(conn, person_refusals, values, changes))

    def refusals(self, now: datetime) -> Callable[[str], Refusal | None]:
        """A lookup of the refusals still in force at `now`, by raw person id (pseudonymised under every configured key).

        Read once: the few people One refuses are held in memory for the run; expired ones are left out.
        """
        db.require_aware(now)
        stmt = select(person_refusals).where(person_refusals.c.retry_at > now)
        rows = self._read("read refused people", lambda conn: conn.execute(stmt).all())
        active = {(row.key_id, row.person): Refusal(row.reason, row.retry_at) for row in rows}
        keys = self._keys

        def lookup(person_id: str) -> Refusal | None:
            if not active:
                return None
            for key_id, pseudonym in keys.person_pseudonyms(person_id).items():
                found = active.get((key_id, pseudonym))
                if found is not None:
                    return found
            return None

        return lookup

    def forget_expired_refusals(self, now: datetime) -> int:
        """Delete the refusals whose back-off is over; return how many went."""
        db.require_aware(now)
        stmt = delete(person_refusals).where(person_refusals.c.retry_at <= now)
        return self._write("forget expired refusals", lambda conn: int(conn.execute(stmt).rowcount))

    # ------------------------------------------------------------------------------------------
    # Audit trail

    def record_events(self, run_id: str, events: Sequence[AuditEntry], at: datetime) -> None:
        """Append audit events to the chain, in order; only pseudonyms are kept.

        One transaction reads the chain's head (locking its row on PostgreSQL; SQLite's BEGIN
        IMMEDIATE already excludes other writers), numbers and signs the events after it, inserts
        them and moves the head: two writers can never fork the chain.
        """
        if not events:
            return
        db.require_aware(at)
        key = self._keys.current
        at = at.astimezone(UTC)
        day = at.date().isoformat()

        def append(conn: Connection) -> None:
            head = db.marker(conn, chain.HEAD, lock=True)
            if head is None:
                raise StateError("the audit chain has no head record; run `flagsync audit --verify`")
            previous, event_id = head.hash, head.event_id
            rows: list[dict[str, Any]] = []
            for entry in events:
                event_id += 1
                person = key.person(entry.person_id) if entry.person_id is not None else None
                row = chain.ChainRow(event_id, at, day, run_id, entry.action, person, entry.outcome, entry.reason, key.key_id, "")
                previous = chain.link(key, previous, row)
                rows.append(db.event_values(row, previous))
            conn.execute(insert(audit_events), rows)
            db.put_marker(conn, chain.sign_marker(key, chain.HEAD, event_id, previous))

        self._write("record audit events", append)

    def audit_events(self, since: date | None, until: date | None) -> list[AuditEvent]:
        """Events on the UTC days from `since` to `until` (both inclusive, either open), oldest first."""
        stmt = select(audit_events).order_by(audit_events.c.at, audit_events.c.id).where(*db.day_range(since, until))
        rows = self._read("read audit events", lambda conn: conn.execute(stmt).all())
        return [
            AuditEvent(row.id, row.at, row.run_id, row.action, row.person, row.outcome, row.reason, row.key_id) for row in rows
        ]

    def audit_counts(self, since: date | None, until: date | None) -> list[tuple[date, str, str, int]]:
        """(UTC day, action, outcome, count) rows for the days from `since` to `until` (inclusive), ordered by day then action."""
        c = audit_events.c
        stmt = (
            select(c.day, c.action, c.outcome, func.count().label("n"))
            .where(*db.day_range(since, until))
            .group_by(c.day, c.action, c.outcome)
            .order_by(c.day, c.action, c.outcome)
        )
        rows = self._read("count audit events", lambda conn: conn.execute(stmt).all())
        return [(date.fromisoformat(row.day), row.action, row.outcome, int(row.n)) for row in rows]

    def purge_audit(self, before: datetime) -> int:
        """Delete the oldest events, up to the first one that happened at or after `before`; return how many went.

        What goes is always a prefix of the chain (an event older than `before` that follows a newer
        one, after a clock step back, waits for it), and the anchor moves to the first kept event,
        signed, so the rest of the chain still verifies.
        """
        db.require_aware(before)
        c = audit_events.c

        def purge(conn: Connection) -> int:
            head = db.marker(conn, chain.HEAD, lock=True)  # excludes appenders while the anchor moves
            if head is None:
                raise StateError("the audit chain has no head record; run `flagsync audit --verify`")
            first_kept = conn.execute(select(func.min(c.id)).where(c.at >= before)).scalar_one_or_none()
            cut = int(first_kept) if first_kept is not None else head.event_id + 1
            last_gone = conn.execute(select(c.chain_hash).where(c.id < cut).order_by(c.id.desc()).limit(1)).scalar_one_or_none()
            if last_gone is None:
                return 0
            purged = int(conn.execute(delete(audit_events).where(c.id < cut)).rowcount)
            db.put_marker(conn, chain.sign_marker(self._keys.current, chain.ANCHOR, cut, last_gone))
            return purged

        return self._write("purge audit events", purge)

    def verify_audit(self) -> ChainCheck:
        """Check every link from the anchor to the head, in one consistent snapshot, streaming the events."""
        c = audit_events.c

        def check(conn: Connection) -> ChainCheck:
            anchor, head = db.marker(conn, chain.ANCHOR), db.marker(conn, chain.HEAD)
            stmt = select(audit_events).order_by(c.id).execution_options(yield_per=_VERIFY_BATCH)
            rows = (
                chain.ChainRow(r.id, r.at, r.day, r.run_id, r.action, r.person, r.outcome, r.reason, r.key_id, r.chain_hash)
                for r in conn.execute(stmt)
            )
            return chain.verify(rows, anchor, head, self._keys)

        return self._read("verify the audit trail", check, snapshot=True)

    # ------------------------------------------------------------------------------------------
    # Change-poll watermark

    def get_watermark(self) -> str | None:
        stmt = select(kv.c.value).where(kv.c.key == WATERMARK_KEY)
        value: str | None = self._read("read the watermark", lambda conn: conn.execute(stmt).scalar_one_or_none())
        return value

    def set_watermark(self, watermark: str | None) -> None:
        def store(conn: Connection) -> None:
            if watermark is None:
                conn.execute(delete(kv).where(kv.c.key == WATERMARK_KEY))
            else:
                db.upsert(conn, kv, {"key": WATERMARK_KEY, "value": watermark}, {"value": watermark})

        self._write("store the watermark", store)

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
        key = self._keys.current
        person, record = key.person, key.record
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
        for row in rows:
            row["key_id"] = key.key_id

        def replace(conn: Connection) -> None:
            conn.execute(delete(report_rows))
            if rows:
                conn.execute(insert(report_rows), rows)

        self._write("replace the report", replace)

    def report(self) -> list[ReportRow]:
        stmt = select(report_rows).order_by(report_rows.c.id)
        rows = self._read("read the report", lambda conn: conn.execute(stmt).all())
        return [ReportRow(row.kind, row.subject, row.reason, row.key_id) for row in rows]

    # ------------------------------------------------------------------------------------------
    # Plumbing

    def _write(self, what: str, work: Callable[[Connection], _T]) -> _T:
        if self._read_only:
            raise StateError(f"cannot {what}: the state store was opened read-only")
        return self._read(what, work)

    def _read(self, what: str, work: Callable[[Connection], _T], *, snapshot: bool = False) -> _T:
        """Run `work` in one transaction, translating every SQLAlchemy failure into a safe `StateError`."""
        with self._serial, translated(what, self._path):
            self._ensure_schema()
            with self._transaction(snapshot=snapshot) as conn:
                return work(conn)

    @contextmanager
    def _transaction(self, *, snapshot: bool) -> Iterator[Connection]:
        engine: Engine = self._engine
        if snapshot and engine.dialect.name == "postgresql":
            with engine.connect() as plain:
                conn = plain.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
            return
        with engine.begin() as conn:
            yield conn
