"""People One refused are skipped across one-off runs, and a person nothing concerns is named as such.

Regression tests for issues 7 and 10: `plan` listed refused people as adds and a one-off `sync` asked
One again every time (the back-off lived in the daemon's memory); `sync --person ID` for a person with
no consent record and no flag said nothing about it.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import E2E, record

pytestmark = pytest.mark.e2e


def test_a_refused_person_is_skipped_by_the_next_one_off_sync_and_plan_says_so(e2e: E2E) -> None:
    """After One refuses an archived person, `plan` lists them as skipped and the next `sync` sends One nothing for them."""
    e2e.seed_people("P4001")
    e2e.seed_people("P4002", state="archived")
    e2e.add_records(record("P4001"), record("P4002"))
    first = e2e.flagsync("sync", "--json").json()
    assert [(i["personId"], i["reason"]) for i in first["personIssues"]] == [("P4002", "PERSON_ARCHIVED")]

    plan = e2e.flagsync("plan", "--json").json()
    assert plan["adds"] == []
    assert [(s["personId"], s["reason"]) for s in plan["skipped"]] == [("P4002", "PERSON_ARCHIVED")]
    text = e2e.flagsync("plan").stdout
    assert "Skipped: One refused them recently" in text and "P4002" in text

    before = len(e2e.writes())
    second = e2e.flagsync("sync", "--json").json()
    assert len(e2e.writes()) == before  # nothing sent for the refused person
    assert second["counts"]["skipped"] == 1


def test_sync_person_for_someone_nothing_concerns_says_so(e2e: E2E) -> None:
    """`sync --person` for an id with no consent record and no flag in One says exactly that, and changes nothing."""
    e2e.seed_people("P4100")
    run = e2e.flagsync("sync", "--person", "P4100")
    assert "P4100: no consent record names this person and One holds no flag of ours for them: nothing to do." in run.stdout
    assert e2e.flagsync("plan", "--person", "P4100", "--json").json()["notFound"] == ["P4100"]
    assert e2e.writes() == []
