"""A state store exactly as flagsync 0.1 made and filled it (before Alembic), for the migration tests.

The tables are copied verbatim from flagsync/adapters/sql_state.py at commit 7f89097 (the release):
`metadata.create_all` plus `schema_version` "1" in kv, as its `_ensure_schema` did. The rows are
written the way its methods wrote them: pseudonyms under the key, naive-UTC text on SQLite.
This module must not import flagsync's state package: it stands for the old code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
)
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

from flagsync.core.pseudonym import Pseudonymizer

SCHEMA_VERSION = "1"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps it as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
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

T0 = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Written:
    """What the old release wrote, to be found again after the upgrade."""

    runs: list[tuple[str, str, datetime, datetime | None, str | None, dict[str, int]]] = field(default_factory=list)
    pending: list[tuple[str, str, datetime, int, bool]] = field(default_factory=list)
    events: list[tuple[int, datetime, str, str, str | None, str, str | None]] = field(default_factory=list)
    report: list[tuple[str, str, str]] = field(default_factory=list)
    watermark: str = "2026-03-05T09:00:00+00:00"
    person_ids: list[str] = field(default_factory=list)


def make_release_0_1_store(url: str, key: Pseudonymizer, *, days: int = 4, fill: bool = True) -> Written:
    """Create the 0.1 tables at `url` and (unless not `fill`) fill them as 0.1 would have: runs, removals, events, report."""
    database = make_url(url).database
    if url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)  # as 0.1's create_private_file did
    engine = create_engine(url)
    written = Written()
    person = key.person
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(insert(kv).values(key="schema_version", value=SCHEMA_VERSION))
        if not fill:
            return written
        with engine.begin() as conn:
            event_id = 0
            for day in range(days):
                started = T0 + timedelta(days=day)
                run_id = f"{day:02d}" + "a" * 30
                counts = {"adds": 2, "removes": 1, "flags_in_one": 10 + day}
                conn.execute(
                    insert(runs).values(
                        run_id=run_id,
                        trigger="scheduled_full",
                        started_at=started,
                        finished_at=started + timedelta(seconds=40),
                        outcome="converged",
                        counts_json=json.dumps(counts, sort_keys=True),
                    )
                )
                written.runs.append((run_id, "scheduled_full", started, started + timedelta(seconds=40), "converged", counts))
                at = started + timedelta(seconds=20)
                rows = [
                    ("add", f"P{day}01", "ok", None),
                    ("add", f"P{day}02", "already_present", None),
                    ("remove", f"P{day}03", "failed", "SERVER_ERROR"),
                    ("hold", None, "held", "MASS_REMOVAL_GUARD"),
                ]
                for action, person_id, outcome, reason in rows:
                    event_id += 1
                    pseudonym = person(person_id) if person_id is not None else None
                    conn.execute(
                        insert(audit_events).values(
                            at=at,
                            day=at.date().isoformat(),
                            run_id=run_id,
                            action=action,
                            person=pseudonym,
                            outcome=outcome,
                            reason=reason,
                        )
                    )
                    written.events.append((event_id, at, run_id, action, pseudonym, outcome, reason))
                    if person_id is not None:
                        written.person_ids.append(person_id)
            unfinished = "ff" + "b" * 30
            conn.execute(insert(runs).values(run_id=unfinished, trigger="operator", started_at=T0 + timedelta(days=days)))
            written.runs.append((unfinished, "operator", T0 + timedelta(days=days), None, None, {}))
            for n, held in ((1, False), (2, True), (3, True)):
                since = T0 + timedelta(hours=n)
                conn.execute(
                    insert(pending_removals).values(
                        involvement_id=f"INV-{n:06d}",
                        person=person(f"PPEND{n}"),
                        since=since,
                        attempts=n,
                        held=held,
                        updated_at=since,
                    )
                )
                written.pending.append((f"INV-{n:06d}", person(f"PPEND{n}"), since, n, held))
                written.person_ids.append(f"PPEND{n}")
            report = [
                ("quarantined", key.record("R-OLD-1"), "MISSING_FIELD:decision"),
                ("unmatched", key.record("R-OLD-2"), "NO_PERSON_ID"),
                ("attention", person("PATTN1"), "not_informed"),
                ("person_issue", person("PISSUE1"), "PERSON_ARCHIVED"),
            ]
            conn.execute(insert(report_rows), [{"kind": k, "subject": s, "reason": r} for k, s, r in report])
            written.report = report
            written.person_ids += ["PATTN1", "PISSUE1"]
            conn.execute(insert(kv).values(key="watermark", value=written.watermark))
    finally:
        engine.dispose()
    return written
