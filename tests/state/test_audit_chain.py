"""The tamper-evident audit trail: `audit --verify` passes an intact chain and names the first link broken by hand-written SQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from flagsync.adapters.state import SqlStateStore
from flagsync.adapters.state.chain import GENESIS, ChainRow, link
from flagsync.cli import main
from flagsync.core.model import RunTrigger
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.ports import AuditEntry
from tests.state.conftest import CLI_KEY
from tests.state.release_0_1 import T0

KEY = Pseudonymizer(CLI_KEY.encode())
PSEUDONYM = re.compile(r"\b[pr]_[0-9a-f]{16}\b")


def _fill(store: SqlStateStore, runs: int = 3) -> None:
    """Three runs of three events each: ids 1 to 9, an hour apart per run."""
    for n in range(runs):
        at = T0 + timedelta(hours=n)
        run_id = store.start_run(RunTrigger.SCHEDULED_FULL, at)
        store.record_events(
            run_id,
            [
                AuditEntry("add", f"P{n}1", "ok"),
                AuditEntry("remove", f"P{n}2", "failed", "SERVER_ERROR"),
                AuditEntry("hold", None, "held"),
            ],
            at,
        )


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _verify(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "--verify", "--config", str(config)])
    return code, capsys.readouterr().out


@pytest.fixture
def filled(state_url: str) -> str:
    store = SqlStateStore(state_url, KEY)
    _fill(store)
    store.close()
    return state_url


def test_an_intact_trail_verifies(filled: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`audit --verify` exits 0 on an untouched trail and says how many events it checked, from which to which."""
    code, out = _verify(cli_config(filled), capsys)

    assert code == 0
    assert f"audit trail intact: 9 events checked (events 1 to 9), signed with key {KEY.key_id}" in out


#: (what was done by hand, the SQL, the event named as the first broken link, words of the reason)
TAMPERING = [
    ("an outcome edited", ["UPDATE audit_events SET outcome = 'ok' WHERE id = 5"], 5, "this event was edited"),
    (
        "a pseudonym swapped",
        ["UPDATE audit_events SET person = (SELECT person FROM audit_events WHERE id = 1) WHERE id = 4"],
        4,
        "edited",
    ),
    ("a reason cleared", ["UPDATE audit_events SET reason = NULL WHERE id = 8"], 8, "edited"),
    ("an event deleted", ["DELETE FROM audit_events WHERE id = 5"], 6, "does not follow from event 4"),
    ("the last event deleted", ["DELETE FROM audit_events WHERE id = 9"], 8, "later events were removed"),
    ("the first event deleted", ["DELETE FROM audit_events WHERE id = 1"], 2, "events before it were removed"),
    (
        "an event copied in",
        [
            "INSERT INTO audit_events (id, at, day, run_id, action, person, outcome, reason, key_id, chain_hash)"
            " SELECT 10, at, day, run_id, action, person, outcome, reason, key_id, chain_hash FROM audit_events WHERE id = 9"
        ],
        10,
        "edited, or an event between them was removed or inserted",
    ),
    (
        "an event inserted with another event's hash",
        [
            "INSERT INTO audit_events (id, at, day, run_id, action, person, outcome, reason, key_id, chain_hash)"
            " SELECT 0, at, day, run_id, action, person, outcome, reason, key_id, chain_hash FROM audit_events WHERE id = 1"
        ],
        0,
        "this event was inserted",
    ),
    (
        "a hash replaced",
        ["UPDATE audit_events SET chain_hash = (SELECT chain_hash FROM audit_events WHERE id = 2) WHERE id = 3"],
        3,
        "edited",
    ),
    (
        "a key id changed",
        ["UPDATE audit_events SET key_id = '00000000' WHERE id = 7"],
        7,
        "key id 00000000, which is not configured",
    ),
]


@pytest.mark.parametrize(("what", "statements", "event_id", "reason"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_hand_tampering_is_named_at_its_first_broken_link(
    filled: str,
    *,
    cli_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    what: str,
    statements: list[str],
    event_id: int,
    reason: str,
) -> None:
    """After an edit, deletion or insertion in SQL, `audit --verify` exits 1 naming the first broken event by id and time only."""
    store = SqlStateStore(filled, KEY)
    events = {e.event_id: e for e in store.audit_events(None, None)}
    store.close()
    _sql(filled, *statements)

    code, out = _verify(cli_config(filled), capsys)

    assert code == 1, what
    at = events.get(event_id, events[9 if event_id == 10 else 1]).at
    assert f"audit trail BROKEN at event {event_id} ({at:%Y-%m-%d %H:%M:%S} UTC)" in out
    assert reason in out
    assert not PSEUDONYM.search(out)


def test_the_head_record_moved_back_with_a_cut_tail_is_caught(
    filled: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Deleting the last events and moving the head record back onto the new last event is caught: the head is signed."""
    _sql(
        filled,
        "DELETE FROM audit_events WHERE id > 7",
        "UPDATE audit_chain SET event_id = 7, hash = (SELECT chain_hash FROM audit_events WHERE id = 7) WHERE name = 'head'",
    )

    code, out = _verify(cli_config(filled), capsys)

    assert code == 1
    assert "audit trail BROKEN at the chain records: the chain's head record has been altered" in out


def test_a_deleted_head_record_is_caught(
    filled: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """With the head record gone, verify fails (and no further event can be appended until it is looked into)."""
    _sql(filled, "DELETE FROM audit_chain WHERE name = 'head'")

    code, out = _verify(cli_config(filled), capsys)

    assert code == 1
    assert "the chain's head record is missing" in out


def test_a_purge_keeps_the_chain_verifiable_and_anchored(
    filled: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """After a retention purge the rest verifies from the new anchor; deleting the first kept event then is caught."""
    store = SqlStateStore(filled, KEY)
    assert store.purge_audit(T0 + timedelta(hours=1)) == 3
    store.close()

    code, out = _verify(cli_config(filled), capsys)
    assert code == 0
    assert "6 events checked (events 4 to 9)" in out

    _sql(filled, "DELETE FROM audit_events WHERE id = 4")
    code, out = _verify(cli_config(filled), capsys)
    assert code == 1
    assert "BROKEN at event 5" in out
    assert "the chain's anchor is event 4: events before it were removed" in out


def test_a_moved_anchor_is_caught(filled: str, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Deleting the oldest events and moving the anchor onto the new first event is caught: the anchor is signed."""
    _sql(
        filled,
        "UPDATE audit_chain SET event_id = 4, hash = (SELECT chain_hash FROM audit_events WHERE id = 3) WHERE name = 'anchor'",
        "DELETE FROM audit_events WHERE id < 4",
    )

    code, out = _verify(cli_config(filled), capsys)

    assert code == 1
    assert "the chain's anchor record has been altered" in out


def test_purging_everything_leaves_an_empty_verifiable_trail_that_grows_again(state_url: str) -> None:
    """A purge of every event leaves an intact empty chain; the next events link to the last purged one and verify."""
    store = SqlStateStore(state_url, KEY)
    _fill(store)
    assert store.purge_audit(T0 + timedelta(days=1)) == 9
    assert store.verify_audit().intact
    assert store.verify_audit().events == 0

    store.record_events("r", [AuditEntry("add", "PX", "ok")], T0 + timedelta(days=2))

    check = store.verify_audit()
    assert (check.intact, check.first_id, check.last_id) == (True, 10, 10)
    store.close()


def test_a_purge_only_removes_a_prefix_of_the_chain(state_url: str) -> None:
    """An old event recorded after a newer one (a clock stepped back) is kept until everything before it may go."""
    store = SqlStateStore(state_url, KEY)
    store.record_events("r", [AuditEntry("add", "P1", "ok")], T0)
    store.record_events("r", [AuditEntry("add", "P2", "ok")], T0 + timedelta(days=10))
    store.record_events("r", [AuditEntry("add", "P3", "ok")], T0 + timedelta(days=1))

    assert store.purge_audit(T0 + timedelta(days=5)) == 1

    assert [e.event_id for e in store.audit_events(None, None)] == [3, 2]  # ordered by time; 3 waits behind 2
    assert store.verify_audit().intact
    store.close()


def test_concurrent_writers_never_fork_the_chain(state_url: str) -> None:
    """Four writers appending at once through their own stores leave one unbroken chain with consecutive ids."""
    writers, batches = 4, 15
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        store = SqlStateStore(state_url, KEY)
        barrier.wait()
        try:
            for b in range(batches):
                store.record_events(f"run{n}", [AuditEntry("add", f"P{n}-{b}-{i}", "ok") for i in range(3)], T0)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)
        finally:
            store.close()

    SqlStateStore(state_url, KEY).get_watermark()  # the tables exist before the race starts
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    store = SqlStateStore(state_url, KEY)
    check = store.verify_audit()
    assert (check.intact, check.events) == (True, writers * batches * 3)
    assert sorted(e.event_id for e in store.audit_events(None, None)) == list(range(1, writers * batches * 3 + 1))
    store.close()


def test_every_signed_field_changes_the_link() -> None:
    """Changing any one stored field of an event (id, time, day, run, action, pseudonym, outcome, reason, key id) changes it."""
    row = ChainRow(7, T0, "2026-03-02", "run", "add", "p_0123456789abcdef", "ok", None, KEY.key_id, "")
    changed = [
        replace(row, event_id=8),
        replace(row, at=T0 + timedelta(microseconds=1)),
        replace(row, day="2026-03-03"),
        replace(row, run_id="run2"),
        replace(row, action="remove"),
        replace(row, person=None),
        replace(row, outcome="failed"),
        replace(row, reason="X"),
        replace(row, key_id="00000000"),
    ]
    hashes = {link(KEY, GENESIS, r) for r in [row, *changed]}

    assert len(hashes) == 1 + len(changed)
    assert link(KEY, "1" * 64, row) != link(KEY, GENESIS, row)  # and so does the previous hash
    assert link(Pseudonymizer(b"another-key-0123456789"), GENESIS, row) != link(KEY, GENESIS, row)
