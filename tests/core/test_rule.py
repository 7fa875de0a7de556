"""Table tests for the consent rule: which record decides, and what it means."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from flagsync.core.fold import Evidence, Gatherer, gather
from flagsync.core.model import CaseStatus, ConsentRecord, Decision, Rules, SourceItem, Verdict
from flagsync.core.rule import decide, more_decisive, verdict
from tests.core.builders import NOW, T0, at, bad, rec

GRANTED = Decision.GRANTED
REFUSED = Decision.REFUSED
WITHDRAWN = Decision.WITHDRAWN

# ---------------------------------------------------------------------------------------------
# more_decisive


@pytest.mark.parametrize(
    ("a", "b", "winner"),
    [
        pytest.param(rec("r1", recorded_at=at(1)), rec("r2", recorded_at=at(2)), "r2", id="later-grant-wins"),
        pytest.param(
            rec("r1", decision=WITHDRAWN, recorded_at=at(1)),
            rec("r2", recorded_at=at(2)),
            "r2",
            id="later-grant-beats-earlier-withdrawal",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1)), rec("r2", decision=WITHDRAWN, recorded_at=at(2)), "r2", id="later-withdrawal-wins"
        ),
        pytest.param(rec("r1", recorded_at=at(1)), rec("r2", decision=REFUSED, recorded_at=at(2)), "r2", id="later-refusal-wins"),
        pytest.param(
            rec("r1", decision=REFUSED, recorded_at=at(3)),
            rec("r2", decision=WITHDRAWN, recorded_at=at(2)),
            "r1",
            id="later-refusal-beats-earlier-withdrawal",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1)), rec("r2", decision=WITHDRAWN, recorded_at=at(1)), "r2", id="tie-withdrawal-beats-grant"
        ),
        pytest.param(
            rec("r1", recorded_at=at(1)), rec("r2", decision=REFUSED, recorded_at=at(1)), "r2", id="tie-refusal-beats-grant"
        ),
        pytest.param(
            rec("r1", decision=REFUSED, recorded_at=at(1)),
            rec("r2", decision=WITHDRAWN, recorded_at=at(1)),
            "r2",
            id="tie-withdrawal-beats-refusal",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1), informed=False),
            rec("r2", recorded_at=at(1)),
            "r1",
            id="tie-grants-uninformed-beats-informed",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1)),
            rec("r2", recorded_at=at(1), informed=False),
            "r2",
            id="tie-grants-uninformed-on-the-higher-id-beats-informed",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1), informed=None),
            rec("r2", recorded_at=at(1)),
            "r1",
            id="tie-grants-informed-unknown-beats-informed",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1)),
            rec("r2", recorded_at=at(1), case_status=CaseStatus.CLOSED),
            "r2",
            id="tie-grants-closed-beats-open",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1), expires_at=at(9)),
            rec("r2", recorded_at=at(1), expires_at=at(5)),
            "r2",
            id="tie-grants-earlier-expiry-wins",
        ),
        pytest.param(
            rec("r1", recorded_at=at(1)),
            rec("r2", recorded_at=at(1), expires_at=at(50)),
            "r2",
            id="tie-grants-any-expiry-beats-none",
        ),
        pytest.param(rec("r2", recorded_at=at(1)), rec("r1", recorded_at=at(1)), "r1", id="full-tie-lowest-record-id"),
        pytest.param(
            rec("r1", decision=WITHDRAWN, recorded_at=at(1)),
            rec("r0", decision=WITHDRAWN, recorded_at=at(1)),
            "r0",
            id="full-tie-withdrawals-lowest-record-id",
        ),
    ],
)
def test_more_decisive_picks_the_deciding_record(a: ConsentRecord, b: ConsentRecord, winner: str) -> None:
    """The later record decides; a tie goes to the more restrictive record, then the lowest record id, in either order."""
    assert more_decisive(a, b).record_id == winner
    assert more_decisive(b, a).record_id == winner


def test_more_decisive_compares_instants_not_wall_clock() -> None:
    """Two timestamps in different zones are compared as instants."""
    from datetime import timezone

    plus_two = timezone(timedelta(hours=2))
    earlier = rec("r1", recorded_at=datetime(2024, 1, 1, 11, 0, tzinfo=plus_two))  # 09:00 UTC
    later = rec("r2", recorded_at=datetime(2024, 1, 1, 10, 0, tzinfo=T0.tzinfo))
    assert more_decisive(earlier, later) is later


def test_more_decisive_is_deterministic_for_same_id_records() -> None:
    """Even two different records sharing an id (a broken source) give the same answer in either order."""
    a = rec("r1", consent_version="v1")
    b = rec("r1", consent_version="v2")
    assert more_decisive(a, b) == more_decisive(b, a)


# ---------------------------------------------------------------------------------------------
# verdict


ACCEPT_V1 = Rules(accepted_versions=frozenset({"v1"}))


@pytest.mark.parametrize(
    ("deciding", "rules", "expected"),
    [
        pytest.param(rec(), Rules(), Verdict.GRANTED, id="usable-grant"),
        pytest.param(rec(decision=REFUSED), Rules(), Verdict.REFUSED, id="refused"),
        pytest.param(rec(decision=WITHDRAWN), Rules(), Verdict.WITHDRAWN, id="withdrawn"),
        pytest.param(
            rec(decision=WITHDRAWN, informed=False, case_status=CaseStatus.CLOSED),
            Rules(),
            Verdict.WITHDRAWN,
            id="withdrawn-first",
        ),
        pytest.param(rec(informed=False), Rules(), Verdict.NOT_INFORMED, id="not-informed"),
        pytest.param(rec(informed=None), Rules(), Verdict.NOT_INFORMED, id="informed-unknown"),
        pytest.param(rec(informed=False, expires_at=NOW), Rules(), Verdict.NOT_INFORMED, id="not-informed-before-expired"),
        pytest.param(rec(expires_at=NOW), Rules(), Verdict.EXPIRED, id="expires-exactly-now"),
        pytest.param(rec(expires_at=NOW - timedelta(seconds=1)), Rules(), Verdict.EXPIRED, id="expired-a-second-ago"),
        pytest.param(rec(expires_at=NOW + timedelta(seconds=1)), Rules(), Verdict.GRANTED, id="expires-in-a-second"),
        pytest.param(rec(expires_at=NOW, case_status=CaseStatus.CLOSED), Rules(), Verdict.EXPIRED, id="expired-before-closed"),
        pytest.param(rec(case_status=CaseStatus.CLOSED), Rules(), Verdict.CASE_CLOSED, id="case-closed"),
        pytest.param(
            rec(case_status=CaseStatus.CLOSED, consent_version="v9"), ACCEPT_V1, Verdict.CASE_CLOSED, id="closed-before-version"
        ),
        pytest.param(rec(consent_version="v9"), ACCEPT_V1, Verdict.VERSION_NOT_ACCEPTED, id="version-not-listed"),
        pytest.param(rec(consent_version=None), ACCEPT_V1, Verdict.VERSION_NOT_ACCEPTED, id="version-missing-when-listed"),
        pytest.param(rec(consent_version="v1"), ACCEPT_V1, Verdict.GRANTED, id="version-listed"),
        pytest.param(rec(consent_version="v9"), Rules(), Verdict.GRANTED, id="any-version-when-none-listed"),
        pytest.param(rec(consent_version=None), Rules(), Verdict.GRANTED, id="no-version-when-none-listed"),
    ],
)
def test_verdict_of_the_deciding_record(deciding: ConsentRecord, rules: Rules, expected: Verdict) -> None:
    """Each condition of the rule yields its own verdict, checked in the documented order."""
    assert verdict(deciding, uncertain=False, now=NOW, rules=rules) is expected


@pytest.mark.parametrize("deciding", [rec(), rec(decision=WITHDRAWN), None], ids=["grant", "withdrawal", "no-valid-record"])
def test_verdict_uncertain_overrides_everything(deciding: ConsentRecord | None) -> None:
    """An uncertain person is UNCERTAIN whatever their valid records say."""
    assert verdict(deciding, uncertain=True, now=NOW, rules=Rules()) is Verdict.UNCERTAIN


def test_verdict_without_records_is_a_caller_error() -> None:
    """verdict() is only for people with records: no record and not uncertain is refused."""
    with pytest.raises(ValueError, match="deciding record"):
        verdict(None, uncertain=False, now=NOW, rules=Rules())


def test_verdict_refuses_a_naive_now() -> None:
    """A naive `now` cannot be compared with UTC timestamps and is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        verdict(rec(), uncertain=False, now=NOW.replace(tzinfo=None), rules=Rules())


def test_only_granted_wants_a_flag() -> None:
    """GRANTED is the one verdict that wants a flag."""
    assert [v for v in Verdict if v.wants_flag] == [Verdict.GRANTED]


# ---------------------------------------------------------------------------------------------
# decide


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param([rec("r1")], Verdict.GRANTED, id="one-grant"),
        pytest.param(
            [rec("r1", recorded_at=at(1)), rec("r2", decision=WITHDRAWN, recorded_at=at(2))],
            Verdict.WITHDRAWN,
            id="withdrawn-later",
        ),
        pytest.param(
            [rec("r2", decision=WITHDRAWN, recorded_at=at(2)), rec("r1", recorded_at=at(3))],
            Verdict.GRANTED,
            id="granted-again-later",
        ),
        pytest.param(
            [rec("r1", recorded_at=at(1)), rec("r2", decision=REFUSED, recorded_at=at(1))],
            Verdict.REFUSED,
            id="same-time-refusal",
        ),
        pytest.param([rec("r1", recorded_at=at(5)), bad("q1")], Verdict.UNCERTAIN, id="newer-grant-and-bad-record"),
        pytest.param([bad("q1"), rec("r1", recorded_at=at(5))], Verdict.UNCERTAIN, id="bad-record-first"),
        pytest.param([bad("q1")], Verdict.UNCERTAIN, id="only-bad-record"),
        pytest.param(
            [rec("r1", recorded_at=at(1), informed=False), rec("r2", recorded_at=at(2))],
            Verdict.GRANTED,
            id="informed-grant-later",
        ),
        pytest.param(
            [rec("r1", recorded_at=at(2), informed=False), rec("r2", recorded_at=at(1))],
            Verdict.NOT_INFORMED,
            id="uninformed-grant-later",
        ),
    ],
)
def test_decide_over_one_persons_records(items: list[SourceItem], expected: Verdict) -> None:
    """The whole-list rule: any invalid record makes the person uncertain, else the latest valid decision counts."""
    assert decide(items, NOW, Rules()) is expected


def test_decide_without_items_is_a_caller_error() -> None:
    """decide() needs at least one record of the person."""
    with pytest.raises(ValueError, match="deciding record"):
        decide([], NOW, Rules())


def test_decide_refuses_records_of_several_people() -> None:
    """decide() is for one person; mixing people is a caller error whose message names no one."""
    with pytest.raises(ValueError, match="one person") as caught:
        decide([rec("r1", person_id="P1"), rec("r2", person_id="P2")], NOW, Rules())
    assert "P1" not in str(caught.value)
    assert "P2" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Gatherer


def test_gatherer_keeps_the_deciding_record_per_person() -> None:
    """Each person's evidence holds their most decisive valid record."""
    gathered = gather(
        [
            rec("r1", "P1", recorded_at=at(1)),
            rec("r2", "P1", WITHDRAWN, recorded_at=at(2)),
            rec("r3", "P2", recorded_at=at(1)),
        ]
    )
    assert gathered.people == {
        "P1": Evidence(uncertain=False, deciding=rec("r2", "P1", WITHDRAWN, recorded_at=at(2))),
        "P2": Evidence(uncertain=False, deciding=rec("r3", "P2", recorded_at=at(1))),
    }
    assert gathered.quarantined == ()
    assert gathered.unmatched == ()


def test_gatherer_quarantined_with_person_makes_them_uncertain() -> None:
    """A quarantined record naming a person makes that person uncertain, even with no valid record, and is listed."""
    q = bad("q1", "P1")
    gathered = gather([rec("r1", "P1", recorded_at=at(9)), q, bad("q2", "P2")])
    assert gathered.people["P1"] == Evidence(uncertain=True, deciding=rec("r1", "P1", recorded_at=at(9)))
    assert gathered.people["P2"] == Evidence(uncertain=True, deciding=None)
    assert gathered.quarantined == (q, bad("q2", "P2"))


def test_gatherer_quarantined_without_person_is_only_listed() -> None:
    """A quarantined record without a person id touches nobody's verdict but is listed."""
    q = bad(None, None)
    gathered = gather([rec("r1", "P1"), q])
    assert gathered.people == {"P1": Evidence(uncertain=False, deciding=rec("r1", "P1"))}
    assert gathered.quarantined == (q,)


def test_gatherer_lists_unmatched_record_ids_sorted() -> None:
    """Valid records without a person id are unmatched: only their record ids are kept, sorted."""
    gathered = gather([rec("r9", None), rec("r1", "P1"), rec("r3", None)])
    assert gathered.unmatched == ("r3", "r9")
    assert set(gathered.people) == {"P1"}


def test_gatherer_sorts_quarantined_records() -> None:
    """Quarantined records come out in a fixed order, whatever order they were read in."""
    items = [bad("q2", None), bad(None, "P1"), bad("q1", "P2")]
    assert gather(items).quarantined == gather(list(reversed(items))).quarantined


def test_gatherer_can_be_fed_one_item_at_a_time() -> None:
    """The streaming fold gives the same result as the convenience function."""
    items: list[SourceItem] = [rec("r1", "P1"), bad("q1", "P2"), rec("r2", None)]
    gatherer = Gatherer()
    for item in items:
        gatherer.add(item)
    assert gatherer.result() == gather(items)


def test_gathered_people_cannot_be_changed() -> None:
    """The result is read-only, so a plan cannot be built from evidence altered afterwards."""
    gathered = gather([rec("r1", "P1")])
    with pytest.raises(TypeError):
        gathered.people["P2"] = Evidence(uncertain=False, deciding=None)  # type: ignore[index]  # proving it is read-only


def test_gatherer_result_is_a_snapshot() -> None:
    """Adding after result() does not change a result already taken."""
    gatherer = Gatherer()
    gatherer.add(rec("r1", "P1"))
    first = gatherer.result()
    gatherer.add(replace(rec("r2", "P1"), decision=WITHDRAWN, recorded_at=at(5)))
    assert first.people["P1"].deciding == rec("r1", "P1")
