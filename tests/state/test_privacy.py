"""The state store keeps no person or record id in the clear, and its errors quote no stored value, SQL parameter or password."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from flagsync.adapters.state import SqlStateStore
from flagsync.core.model import Attention, Flag, QuarantinedRecord, QuarantineReason, RunOutcome, RunTrigger, Verdict
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import StateError
from flagsync.ports import AuditEntry
from tests.state.conftest import KEY

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

PERSON_CANARIES = [f"CanaryPerson{i}Zq" for i in range(6)]
RECORD_CANARIES = [f"CanaryRecord{i}Zq" for i in range(5)]
#: Any trace of a canary, in any case, fails the test: "canary" itself never occurs in what the store writes.
TRACE = b"canary"


def _fill_with_canaries(store: SqlStateStore) -> None:
    """Exercise every writing method with canary person and record ids."""
    p, r = PERSON_CANARIES, RECORD_CANARIES
    run_id = store.start_run(RunTrigger.OPERATOR_PERSON, T0)
    store.mark_pending(Flag("INV-1", p[0], 1), T0)
    store.mark_pending(Flag("INV-2", p[1], 1), T0, held=True)
    store.mark_pending(Flag("INV-2", p[1], 1), T0, held=True)
    store.record_events(
        run_id,
        [AuditEntry("add", p[0], "ok"), AuditEntry("remove", p[1], "failed", "SERVER_ERROR"), AuditEntry("hold", p[2], "held")],
        T0,
    )
    store.replace_report(
        quarantined=[
            QuarantinedRecord(r[0], p[2], QuarantineReason.BAD_DECISION, "decision"),
            QuarantinedRecord(None, p[3], QuarantineReason.MISSING_FIELD, "record_id"),
        ],
        unmatched=[r[1]],
        attention=[Attention(p[4], r[2], Verdict.VERSION_NOT_ACCEPTED)],
        person_issues=[(p[5], "PERSON_MERGED")],
    )
    store.set_watermark("2024-03-01T12:00:00+00:00")
    store.finish_run(run_id, RunOutcome.CONVERGED, {"added": 1}, T0)


def test_sqlite_file_holds_no_canary(tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    """After every kind of write, no byte of the SQLite database, its WAL or its shared memory spells a canary id."""
    path = tmp_path / "state.db"
    store = SqlStateStore(f"sqlite:///{path}", pseudonymizer)
    _fill_with_canaries(store)

    def written() -> bytes:
        return b"".join(f.read_bytes() for f in sorted(tmp_path.iterdir()) if f.name.startswith("state.db"))

    while_open = written()
    store.close()
    after_close = written()

    assert pseudonymizer.person(PERSON_CANARIES[0]).encode() in while_open + after_close  # the data really is there
    assert TRACE not in while_open.lower()
    assert TRACE not in after_close.lower()


@pytest.mark.postgres
def test_postgresql_rows_hold_no_canary(pg_url: str, pseudonymizer: Pseudonymizer) -> None:
    """After every kind of write, no row of any PostgreSQL table, rendered as text, spells a canary id."""
    store = SqlStateStore(pg_url, pseudonymizer)
    _fill_with_canaries(store)
    store.close()

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            rows: list[str] = []
            for table in tables:
                query = text(f'SELECT t::text FROM "{table}" AS t')  # noqa: S608 - table names come from the catalogue, not input
                rows += [row[0] for row in conn.execute(query)]
    finally:
        engine.dispose()
    dump = "\n".join(rows)

    assert set(tables) >= {"runs", "pending_removals", "audit_events", "report_rows", "kv"}
    assert pseudonymizer.person(PERSON_CANARIES[0]) in dump
    assert TRACE.decode() not in dump.lower()


def test_state_error_quotes_no_parameter(state_url: str, pseudonymizer: Pseudonymizer) -> None:
    """A failing statement raises StateError naming the operation only: no SQL, no bound value, no chained driver error."""
    store = SqlStateStore(state_url, pseudonymizer)
    store.set_watermark("w")
    engine = create_engine(state_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE pending_removals"))
    engine.dispose()

    with pytest.raises(StateError) as caught:
        store.mark_pending(Flag("INV-CanaryInvolvementZq", PERSON_CANARIES[0], 1), T0)
    store.close()

    message = str(caught.value)
    assert message.startswith("state store failed to remember a pending removal")
    for leak in ("canary", "insert", "pending_removals", pseudonymizer.person(PERSON_CANARIES[0]).lower()):
        assert leak not in message.lower()
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_unreachable_database_error_has_no_password(pseudonymizer: Pseudonymizer) -> None:
    """A PostgreSQL store that cannot be reached raises StateError without the password or the URL."""
    store = SqlStateStore("postgresql+psycopg://flagsync:hunter2-secret@127.0.0.1:1/state?connect_timeout=2", pseudonymizer)

    with pytest.raises(StateError) as caught:
        store.get_watermark()

    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)
    assert caught.value.__cause__ is None


def _unkeyed_digests(value: str) -> set[str]:
    """What a careless implementation might store for an id: digests of it without any key, in hex."""
    raw = value.encode()
    found = {hashlib.new(name, raw).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
    found |= {hmac.new(b"", raw, hashlib.sha256).hexdigest(), hmac.new(b"", b"person:" + raw, hashlib.sha256).hexdigest()}
    return found | {d[:16] for d in found} | {d[:8] for d in found}


def test_key_ids_chain_hashes_and_chain_records_hold_no_id_or_key(state_url: str, pseudonymizer: Pseudonymizer) -> None:
    """The new columns (key_id, chain_hash, the head and anchor records) hold no raw id, no unkeyed digest of one, and no key."""
    store = SqlStateStore(state_url, pseudonymizer)
    _fill_with_canaries(store)
    store.purge_audit(T0 + timedelta(seconds=1))  # writes the anchor record too
    store.record_events("r2", [AuditEntry("add", PERSON_CANARIES[0], "ok")], T0 + timedelta(days=1))
    store.close()

    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            values = [str(v) for row in conn.execute(text("SELECT key_id, chain_hash FROM audit_events")) for v in row]
            values += [str(v) for row in conn.execute(text("SELECT key_id FROM pending_removals")) for v in row]
            values += [str(v) for row in conn.execute(text("SELECT key_id FROM report_rows")) for v in row]
            values += [str(v) for row in conn.execute(text("SELECT hash, key_id, mac FROM audit_chain")) for v in row]
    finally:
        engine.dispose()
    stored = "\n".join(values)

    assert pseudonymizer.key_id in stored and len(values) > 10  # the columns are really there and filled
    forbidden = {KEY.decode(), KEY.hex()} | set(PERSON_CANARIES) | set(RECORD_CANARIES)
    for canary in (*PERSON_CANARIES, *RECORD_CANARIES):
        forbidden |= _unkeyed_digests(canary)
    leaked = sorted(value for value in forbidden if value in stored)
    assert leaked == []
    assert TRACE.decode() not in stored.lower()
