"""End-to-end sync scenarios: the `flagsync` command against the mock of One, checked by what One holds afterwards."""

from __future__ import annotations

import json

import pytest

from flagsync.adapters.run_lock import RunLock
from tests.e2e.conftest import E2E, ago, record

pytestmark = pytest.mark.e2e

A, B, C, D = "PCANARY01", "PCANARY02", "PCANARY03", "PCANARY04"


def test_first_sync_flags_exactly_the_consented_people(e2e: E2E) -> None:
    """A first sync flags the people with informed, granted consent on an open case, and a second sync changes nothing."""
    e2e.seed_people(A, B, C, D)
    other_team = e2e.add_by_hand(A, team="EHS")
    e2e.add_records(
        record(A),
        record(B),
        record(C, "refused"),
        record(D, informed="no"),
    )
    first = e2e.flagsync("sync", "--json")
    assert first.json()["outcome"] == "converged"
    assert first.json()["counts"]["adds"] == 2
    assert e2e.flagged() == {A, B}
    again = e2e.flagsync("sync", "--json")
    assert again.json()["counts"]["adds"] == again.json()["counts"]["removes"] == 0
    assert [i["status"] for i in e2e.involvements() if i["id"] == other_team] == ["active"]


def test_withdrawal_removes_the_flag(e2e: E2E) -> None:
    """A newer withdrawal removes the person's flag on the next sync; the other person keeps theirs."""
    e2e.seed_people(A, B)
    e2e.add_records(record(A), record(B))
    e2e.flagsync("sync")
    assert e2e.flagged() == {A, B}
    e2e.add_records(record(A, "withdrawn", recorded_at=ago(days=1)))
    e2e.flagsync("sync")
    assert e2e.flagged() == {B}


def test_case_closure_removes_the_flag(e2e: E2E) -> None:
    """A later record saying the case is closed removes the flag."""
    e2e.seed_people(A)
    e2e.add_records(record(A))
    e2e.flagsync("sync")
    assert e2e.flagged() == {A}
    e2e.add_records(record(A, recorded_at=ago(days=1), case_status="closed"))
    e2e.flagsync("sync")
    assert e2e.flagged() == set()


def test_expired_consent_removes_the_flag(e2e: E2E) -> None:
    """Consent whose expiry date has passed since the last sync loses its flag."""
    e2e.seed_people(A, B)
    e2e.add_records(record(A, expires_at=ago(days=-30)), record(B))
    e2e.flagsync("sync")
    assert e2e.flagged() == {A, B}
    e2e.sql("UPDATE consent_records SET expires_at = ? WHERE person_id = ?", ago(days=1), A)
    e2e.flagsync("sync")
    assert e2e.flagged() == {B}


def test_drift_in_one_is_repaired(e2e: E2E) -> None:
    """A flag of ours deleted by hand in One comes back; one added by hand without consent goes; other teams' stay."""
    e2e.seed_people(A, B, C)
    e2e.add_records(record(A), record(B))
    e2e.flagsync("sync")
    [flag_a] = [i["id"] for i in e2e.ours() if i["personId"] == A]
    e2e.remove_by_hand(flag_a)
    e2e.add_by_hand(C)
    other_team = e2e.add_by_hand(C, team="YOS")
    run = e2e.flagsync("sync", "--json")
    assert (run.json()["counts"]["adds"], run.json()["counts"]["removes"]) == (1, 1)
    assert e2e.flagged() == {A, B}
    assert [i["status"] for i in e2e.involvements() if i["id"] == other_team] == ["active"]


def test_people_one_will_not_flag_are_reported(e2e: E2E) -> None:
    """An archived or merged person is reported (exit 0), and `flagsync status` lists them without their ids."""
    e2e.seed_people(A)
    e2e.seed_people(B, state="archived")
    e2e.seed_people(C, state="merged", successor=D)
    e2e.add_records(record(A), record(B), record(C))
    run = e2e.flagsync("sync", "--json")
    issues = {i["personId"]: i["reason"] for i in run.json()["personIssues"]}
    assert issues == {B: "PERSON_ARCHIVED", C: "PERSON_MERGED"}
    assert e2e.flagged() == {A}
    status = e2e.flagsync("status", "--json")
    reported = sorted(r["reason"] for r in status.json()["report"] if r["kind"] == "person_issue")
    assert reported == ["PERSON_ARCHIVED", "PERSON_MERGED"]
    table = e2e.flagsync("status")
    assert "People One will not flag (last full run): 2" in table.stdout
    assert "PERSON_ARCHIVED" in table.stdout
    for person_id in (A, B, C):
        assert person_id not in status.stdout + table.stdout


def test_mass_removal_is_held_then_released(e2e: E2E) -> None:
    """An emptied source with more than 50 flags in One exits 4 and removes nothing; --allow-mass-removal then removes them."""
    people = [f"PCANMASS{n:03d}" for n in range(55)]
    e2e.seed_people(*people)
    for person_id in people:
        e2e.add_by_hand(person_id)
    held = e2e.flagsync("sync", expect=4)
    assert "Held by the mass-removal guard" in held.stdout
    assert e2e.flagged() == set(people)
    status = e2e.flagsync("status", "--json")
    assert sum(p["held"] for p in status.json()["pendingRemovals"]) == 55
    e2e.flagsync("sync", "--allow-mass-removal")
    assert e2e.flagged() == set()


def test_unreadable_source_is_an_error_and_removes_nothing(e2e: E2E) -> None:
    """A consent table that cannot be read exits 1 and leaves every flag in One alone."""
    e2e.seed_people(A, B)
    e2e.add_records(record(A), record(B))
    e2e.flagsync("sync")
    e2e.sql("DROP TABLE consent_records")
    run = e2e.flagsync("sync", expect=1)
    assert "consent" in (run.stdout + run.stderr).lower()
    assert e2e.flagged() == {A, B}
    assert not [w for w in e2e.writes() if w["method"] == "DELETE"]


def test_plan_exit_codes_and_json(e2e: E2E) -> None:
    """`plan` exits 2 with changes pending (its --json parses and lists them) and 0 once synced; it writes nothing."""
    e2e.seed_people(A, B)
    e2e.add_records(record(A))
    stray = e2e.add_by_hand(B)
    table = e2e.flagsync("plan", expect=2)
    assert "1 to add, 1 to remove" in table.stdout
    doc = e2e.flagsync("plan", "--json", expect=2).json()
    assert doc["adds"] == [A]
    assert doc["removes"] == [{"personId": B, "involvementId": stray}]
    assert e2e.writes() == []
    e2e.flagsync("sync")
    assert e2e.flagsync("plan", "--json").json()["adds"] == []


def test_sync_one_person(e2e: E2E) -> None:
    """`sync --person ID` syncs just that person and leaves everyone else for later."""
    e2e.seed_people(A, B, C)
    e2e.add_records(record(A), record(B))
    stray = e2e.add_by_hand(C)
    e2e.flagsync("sync", "--person", A)
    assert e2e.flagged() == {A, C}
    assert e2e.flagsync("plan", "--person", B, "--json", expect=2).json()["adds"] == [B]
    e2e.flagsync("sync", "--person", C)
    assert e2e.flagged() == {A}
    assert stray not in {i["id"] for i in e2e.ours()}


def test_invalid_person_option_is_refused(e2e: E2E) -> None:
    """`sync --person` with a malformed id exits 1 before anything is sent."""
    run = e2e.flagsync("sync", "--person", "not/an id", expect=1)
    assert "--person" in run.stderr
    assert e2e.journal() == []


def test_dry_run_writes_nothing(e2e: E2E) -> None:
    """`sync --dry-run` shows the plan, exits as `plan` does, and sends no create or removal."""
    e2e.seed_people(A, B)
    e2e.add_records(record(A))
    e2e.add_by_hand(B)
    run = e2e.flagsync("sync", "--dry-run", expect=2)
    assert "Dry run: nothing was written." in run.stdout
    assert e2e.writes() == []
    assert e2e.flagged() == {B}


def test_status_lists_runs(e2e: E2E) -> None:
    """`status` and `status --json` list the recent runs with their outcome and counts."""
    e2e.seed_people(A)
    e2e.add_records(record(A))
    assert e2e.flagsync("status").stdout.startswith("Recent runs:\n  (no runs yet)")
    e2e.flagsync("sync")
    doc = e2e.flagsync("status", "--json").json()
    [run] = doc["runs"]
    assert (run["trigger"], run["outcome"], run["counts"]["adds"]) == ("operator", "converged", 1)
    assert doc["pendingRemovals"] == []
    table = e2e.flagsync("status").stdout
    assert "operator" in table and "converged" in table and "adds 1" in table


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_audit_counts_without_ids(e2e: E2E, fmt: str) -> None:
    """`audit` counts adds and removes per day and outcome (exact with --exact, else 1 and 2 as *); no id, nor in --events."""
    e2e.seed_people(A, B, C)
    e2e.add_records(record(A), record(B))
    e2e.add_by_hand(C)
    e2e.flagsync("sync")
    counts = e2e.flagsync("audit", "--format", fmt, "--exact").stdout
    suppressed = e2e.flagsync("audit", "--format", fmt).stdout
    events = e2e.flagsync("audit", "--format", fmt, "--events").stdout
    if fmt == "json":
        rows = json.loads(counts)["counts"]
        assert {(r["action"], r["outcome"], r["count"]) for r in rows} == {("add", "ok", 2), ("remove", "ok", 1)}
        assert {r["count"] for r in json.loads(suppressed)["counts"]} == {"*"}
        assert all(e["person"].startswith("p_") for e in json.loads(events))
    else:
        lines = counts.splitlines()
        assert lines[0].startswith("# exact counts")
        assert lines[1] == "day,action,outcome,count"
        assert {tuple(line.split(",")[1:]) for line in lines[2:]} == {("add", "ok", "2"), ("remove", "ok", "1")}
        assert {line.split(",")[3] for line in suppressed.splitlines()[2:]} == {"*"}
    for text in (counts, suppressed, events):
        assert not [i for i in e2e.person_ids | e2e.record_ids if i in text]


def test_check_passes_against_the_mock(e2e: E2E) -> None:
    """`check` exits 0 with every check ok against the mock."""
    e2e.add_records(record(A))
    run = e2e.flagsync("check")
    assert "FAIL" not in run.stdout
    assert "ok   One token and listing" in run.stdout


def test_check_fails_with_a_wrong_secret_and_does_not_print_it(e2e: E2E) -> None:
    """`check` with a wrong client secret exits 1, says the One check failed, and never shows the secret."""
    wrong = "wrong-secret-CANARYWRONG-5d1"
    e2e.write_config(client_secret=wrong)
    run = e2e.flagsync("check", "-v", expect=1)
    assert "FAIL One token and listing" in run.stdout
    assert wrong not in run.stdout + run.stderr
    assert all(wrong not in e["body"] for e in e2e.journal())


def test_operator_sync_while_a_run_is_in_progress(e2e: E2E) -> None:
    """An operator's sync while the run lock is held exits 1 with "another flagsync run is in progress"."""
    e2e.seed_people(A)
    e2e.add_records(record(A))
    with RunLock(e2e.state_url, wait_seconds=0):
        run = e2e.flagsync("sync", expect=1)
    assert "another flagsync run is in progress" in run.stderr
    assert e2e.writes() == []


def test_a_quarantined_record_removes_the_flag_and_is_reported_by_pseudonym(e2e: E2E) -> None:
    """A person with an invalid record loses the flag (fail closed); `plan` shows the record id, `status` only a pseudonym."""
    e2e.seed_people(A, B)
    e2e.add_records(record(A), record(B))
    e2e.flagsync("sync")
    [bad] = e2e.add_records(record(A, informed="maybe", recorded_at=ago(days=2)))
    plan = e2e.flagsync("plan", "--json", expect=2).json()
    assert [(q["recordId"], q["reason"]) for q in plan["quarantined"]] == [(bad, "BAD_BOOLEAN")]
    e2e.flagsync("sync")
    assert e2e.flagged() == {B}
    status = e2e.flagsync("status", "--json")
    [row] = [r for r in status.json()["report"] if r["kind"] == "quarantined"]
    assert row["reason"] == "BAD_BOOLEAN:informed"
    assert bad not in status.stdout
