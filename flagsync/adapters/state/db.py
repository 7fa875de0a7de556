"""Row-level helpers of the state store: upserts, the chain's head and anchor rows, rows turned into records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from flagsync.adapters.state import chain
from flagsync.adapters.state.schema import audit_chain, audit_events
from flagsync.core.model import RunOutcome, RunTrigger
from flagsync.ports import RunRecord


def event_values(row: chain.ChainRow, chain_hash: str) -> dict[str, Any]:
    return {
        "id": row.event_id,
        "at": row.at,
        "day": row.day,
        "run_id": row.run_id,
        "action": row.action,
        "person": row.person,
        "outcome": row.outcome,
        "reason": row.reason,
        "key_id": row.key_id,
        "chain_hash": chain_hash,
    }


def marker(conn: Connection, name: str, *, lock: bool = False) -> chain.Marker | None:
    stmt = select(audit_chain).where(audit_chain.c.name == name)
    row = conn.execute(stmt.with_for_update() if lock else stmt).one_or_none()
    return chain.Marker(row.name, int(row.event_id), row.hash, row.key_id, row.mac) if row is not None else None


def put_marker(conn: Connection, marker: chain.Marker) -> None:
    values = {"name": marker.name, "event_id": marker.event_id, "hash": marker.hash, "key_id": marker.key_id, "mac": marker.mac}
    upsert(conn, audit_chain, values, {k: v for k, v in values.items() if k != "name"})


def require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("state store timestamps must be timezone-aware")


def day_range(since: date | None, until: date | None) -> list[Any]:
    conditions: list[Any] = []
    if since is not None:
        conditions.append(audit_events.c.day >= since.isoformat())
    if until is not None:
        conditions.append(audit_events.c.day <= until.isoformat())
    return conditions


def upsert(conn: Connection, table: Table, values: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
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


def run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        trigger=RunTrigger(row.trigger),
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=RunOutcome(row.outcome) if row.outcome is not None else None,
        counts=load_counts(row.counts_json),
    )


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def load_counts(raw: str) -> dict[str, int]:
    loaded = json.loads(raw)
    return {str(k): int(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
