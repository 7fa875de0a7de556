"""Table tests for the planner: adds, removes, duplicates, scope and the mass-removal guard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from flagsync.core.fold import gather
from flagsync.core.model import (
    Attention,
    CaseStatus,
    ConsentRecord,
    Decision,
    Flag,
    Plan,
    Refusal,
    Rules,
    Skipped,
    SourceItem,
    Verdict,
)
from flagsync.core.planner import build_plan, guard_trips
from tests.core.builders import NOW, at, bad, flag, rec

WITHDRAWN = Decision.WITHDRAWN


DEFAULT_RULES = Rules()


def plan_for(
    items: Sequence[SourceItem],
    current: Sequence[Flag],
    rules: Rules = DEFAULT_RULES,
    *,
    scope: frozenset[str] | None = None,
    allow_mass_removal: bool = False,
) -> Plan:
    """The plan for these items and flags at NOW."""
    return build_plan(gather(items), current, NOW, rules, scope=scope, allow_mass_removal=allow_mass_removal)


def test_granted_person_without_flag_is_added() -> None:
    """A person who wants a flag and has none is added."""
    plan = plan_for([rec("r1", "P1")], [])
    assert plan.adds == ("P1",)
    assert (plan.removes, plan.held, plan.unchanged) == ((), (), ())
    assert plan.verdicts == {"P1": Verdict.GRANTED}


def test_granted_person_with_flag_is_unchanged() -> None:
    """A person who wants a flag and has one needs nothing."""
    plan = plan_for([rec("r1", "P1")], [flag("i1", "P1")])
    assert plan.unchanged == ("P1",)
    assert not plan.has_changes


def test_withdrawn_person_with_flag_is_removed() -> None:
    """A withdrawal removes the person's flag."""
    f = flag("i1", "P1")
    plan = plan_for([rec("r1", "P1", recorded_at=at(1)), rec("r2", "P1", WITHDRAWN, recorded_at=at(2))], [f])
    assert plan.removes == (f,)
    assert plan.adds == ()


def test_uncertain_person_with_flag_is_removed() -> None:
    """A quarantined record removes the person's flag (privacy fails closed)."""
    f = flag("i1", "P1")
    plan = plan_for([rec("r1", "P1", recorded_at=at(9)), bad("q1", "P1")], [f])
    assert plan.removes == (f,)
    assert plan.verdicts == {"P1": Verdict.UNCERTAIN}
    assert plan.quarantined == (bad("q1", "P1"),)


def test_flag_of_person_absent_from_source_is_removed_in_full_reconcile() -> None:
    """A flag of ours on someone with no consent record goes in a full reconcile."""
    keep, stray = flag("i1", "P1"), flag("i2", "P9")
    plan = plan_for([rec("r1", "P1")], [keep, stray])
    assert plan.removes == (stray,)
    assert "P9" not in plan.verdicts


def test_several_flags_keep_the_lowest_involvement_id_when_wanted() -> None:
    """Duplicate flags of a wanted person: the lowest involvement id stays, the rest go."""
    flags = [flag("i3", "P1"), flag("i1", "P1"), flag("i2", "P1")]
    plan = plan_for([rec("r1", "P1")], flags, Rules(max_removal_fraction=1.0))
    assert plan.unchanged == ("P1",)
    assert plan.removes == (flag("i2", "P1"), flag("i3", "P1"))
    assert plan.adds == ()


def test_several_flags_all_go_when_not_wanted() -> None:
    """Duplicate flags of a person who wants none all go."""
    flags = [flag("i2", "P1"), flag("i1", "P1")]
    plan = plan_for([rec("r1", "P1", WITHDRAWN)], flags, Rules(max_removals=5, max_removal_fraction=1.0))
    assert plan.removes == (flag("i1", "P1"), flag("i2", "P1"))
    assert plan.unchanged == ()


def test_a_flag_listed_twice_is_removed_once() -> None:
    """The same flag listed twice by One is one flag, counted and removed once."""
    f = flag("i1", "P1")
    plan = plan_for([rec("r1", "P1", WITHDRAWN)], [f, f])
    assert plan.removes == (f,)
    assert plan.current_flags == 1


def test_attention_lists_valid_but_unusable_consents() -> None:
    """Not-informed and unaccepted-version verdicts are listed for attention with the deciding record; others are not."""
    rules = Rules(accepted_versions=frozenset({"v1"}))
    items = [
        rec("r1", "P1", informed=False),
        rec("r2", "P2", consent_version="v0"),
        rec("r3", "P3", case_status=CaseStatus.CLOSED),
        rec("r4", "P4", consent_version="v1"),
    ]
    plan = plan_for(items, [], rules)
    assert plan.attention == (
        Attention("P1", "r1", Verdict.NOT_INFORMED),
        Attention("P2", "r2", Verdict.VERSION_NOT_ACCEPTED),
    )
    assert plan.adds == ("P4",)


def test_unmatched_and_quarantined_come_from_the_gathered_source() -> None:
    """A full plan reports every unmatched record id and every quarantined record."""
    plan = plan_for([rec("r1", None), bad(None, None), bad("q2", "P2")], [])
    assert plan.unmatched == ("r1",)
    assert plan.quarantined == (bad(None, None), bad("q2", "P2"))
    assert plan.verdicts == {"P2": Verdict.UNCERTAIN}


def test_output_is_sorted() -> None:
    """Adds, unchanged and removals are sorted whatever order the inputs came in."""
    items = [rec("r1", "P3"), rec("r2", "P1"), rec("r3", "P2"), rec("r4", "P5"), rec("r5", "P4")]
    current = [flag("i9", "P4"), flag("i1", "P5"), flag("i5", "X"), flag("i2", "Y")]
    plan = plan_for(items, current, Rules(max_removal_fraction=1.0))
    assert plan.adds == ("P1", "P2", "P3")
    assert plan.unchanged == ("P4", "P5")
    assert plan.removes == (flag("i2", "Y"), flag("i5", "X"))
    assert list(plan.verdicts) == ["P1", "P2", "P3", "P4", "P5"]


def test_naive_now_is_refused() -> None:
    """A naive `now` is refused even when no verdict needs it."""
    with pytest.raises(ValueError, match="timezone-aware"):
        build_plan(gather([]), [], NOW.replace(tzinfo=None), Rules())


# ---------------------------------------------------------------------------------------------
# Scope


def test_scoped_plan_ignores_flags_outside_scope() -> None:
    """A person-scoped sync neither removes nor counts flags of people outside the scope."""
    outside = flag("i2", "P9")
    plan = plan_for([rec("r1", "P1")], [outside], scope=frozenset({"P1"}))
    assert plan.adds == ("P1",)
    assert (plan.removes, plan.held, plan.unchanged) == ((), (), ())
    assert plan.current_flags == 0


def test_scoped_plan_considers_only_people_in_scope() -> None:
    """Records of people outside the scope give no verdict, add or report."""
    items: list[SourceItem] = [
        rec("r1", "P1"),
        rec("r2", "P2"),
        rec("r3", "P3", informed=False),
        bad("q1", "P3"),
        bad("q0", None),
        rec("r4", None),
    ]
    plan = plan_for(items, [], scope=frozenset({"P1"}))
    assert plan.adds == ("P1",)
    assert plan.verdicts == {"P1": Verdict.GRANTED}
    assert (plan.attention, plan.quarantined) == ((), ())
    assert plan.unmatched == ()


def test_scoped_person_without_records_loses_their_flag() -> None:
    """A person in scope with no record wants no flag; they get no verdict."""
    f = flag("i1", "P1")
    plan = plan_for([], [f], scope=frozenset({"P1"}))
    assert plan.removes == (f,)
    assert plan.verdicts == {}


def test_scoped_plan_reports_quarantined_records_of_people_in_scope() -> None:
    """A scoped plan lists the quarantined records of the people in scope."""
    plan = plan_for([bad("q1", "P1"), bad("q2", "P2")], [], scope=frozenset({"P1"}))
    assert plan.quarantined == (bad("q1", "P1"),)
    assert plan.verdicts == {"P1": Verdict.UNCERTAIN}


def test_empty_scope_plans_nothing() -> None:
    """An empty scope considers nobody."""
    plan = plan_for([rec("r1", "P1")], [flag("i1", "P2")], scope=frozenset())
    assert plan == Plan()


# ---------------------------------------------------------------------------------------------
# Mass-removal guard


@pytest.mark.parametrize(
    ("removals", "current", "rules", "trips"),
    [
        pytest.param(0, 0, Rules(), False, id="nothing"),
        pytest.param(1, 1, Rules(), False, id="single-removal-of-only-flag"),
        pytest.param(1, 1000, Rules(max_removal_fraction=0.0), False, id="single-removal-never-trips-fraction"),
        pytest.param(1, 1, Rules(max_removals=0), True, id="single-removal-over-absolute-zero"),
        pytest.param(50, 1000, Rules(), False, id="absolute-exactly-at-limit"),
        pytest.param(51, 1000, Rules(), True, id="absolute-one-over"),
        pytest.param(10, 100, Rules(), False, id="fraction-exactly-at-limit"),
        pytest.param(11, 100, Rules(), True, id="fraction-one-over"),
        pytest.param(7, 70, Rules(), False, id="fraction-at-limit-despite-float-rounding"),
        pytest.param(29, 100, Rules(max_removal_fraction=0.29), False, id="fraction-0.29-at-limit-float-trap"),
        pytest.param(30, 100, Rules(max_removal_fraction=0.29), True, id="fraction-0.29-one-over"),
        pytest.param(2, 10, Rules(), True, id="two-of-ten"),
        pytest.param(2, 20, Rules(), False, id="two-of-twenty"),
        pytest.param(2, 2, Rules(max_removal_fraction=1.0), False, id="everything-allowed-by-fraction"),
        pytest.param(3, 3, Rules(max_removals=2, max_removal_fraction=1.0), True, id="absolute-trips-alone"),
    ],
)
def test_guard_boundaries(removals: int, current: int, rules: Rules, trips: bool) -> None:
    """The guard trips strictly above the absolute limit or, for two or more removals, strictly above the fraction."""
    assert guard_trips(removals, current, rules) is trips


def _withdrawn(n: int) -> tuple[list[ConsentRecord], list[Flag]]:
    """n people who withdrew, each with a flag."""
    items = [rec(f"r{i:03d}", f"P{i:03d}", WITHDRAWN) for i in range(n)]
    flags = [flag(f"i{i:03d}", f"P{i:03d}") for i in range(n)]
    return items, flags


def test_tripped_guard_holds_every_removal_but_lets_adds_through() -> None:
    """Over the limit, all removals are held, none removed, and adds still proceed."""
    items, flags = _withdrawn(3)
    plan = plan_for([*items, rec("r999", "NEW")], flags, Rules(max_removals=2, max_removal_fraction=1.0))
    assert plan.guard_tripped
    assert plan.removes == ()
    assert plan.held == tuple(sorted(flags))
    assert plan.adds == ("NEW",)


def test_allow_mass_removal_releases_the_guard() -> None:
    """With allow_mass_removal the removals go ahead and nothing is held."""
    items, flags = _withdrawn(3)
    plan = plan_for(items, flags, Rules(max_removals=2, max_removal_fraction=1.0), allow_mass_removal=True)
    assert not plan.guard_tripped
    assert plan.removes == tuple(sorted(flags))
    assert plan.held == ()


def test_guard_counts_duplicate_flag_removals() -> None:
    """Removing surplus duplicates counts toward the guard like any removal."""
    flags = [flag(f"i{i}", "P1") for i in range(4)]
    plan = plan_for([rec("r1", "P1")], flags, Rules(max_removals=2, max_removal_fraction=1.0))
    assert plan.guard_tripped
    assert plan.held == tuple(flags[1:])
    assert plan.unchanged == ("P1",)


def test_one_familys_withdrawal_always_goes_through() -> None:
    """A single removal among few flags is never held by the fraction test."""
    plan = plan_for([rec("r1", "P1", WITHDRAWN)], [flag("i1", "P1")])
    assert not plan.guard_tripped
    assert plan.removes == (flag("i1", "P1"),)


def test_scoped_guard_ignores_the_fraction() -> None:
    """In a scoped plan two siblings' withdrawals go through: the fraction of a few scoped flags means nothing."""
    items, flags = _withdrawn(2)
    many_others = [flag(f"o{i:03d}", f"O{i:03d}") for i in range(100)]
    plan = plan_for(items, flags + many_others, scope=frozenset({"P000", "P001"}))
    assert plan.current_flags == 2
    assert not plan.guard_tripped
    assert plan.removes == tuple(flags)


def test_scoped_guard_keeps_the_absolute_limit() -> None:
    """A scoped plan removing more than max_removals is still held."""
    items, flags = _withdrawn(3)
    plan = plan_for(items, flags, rules=Rules(max_removals=2), scope=frozenset({"P000", "P001", "P002"}))
    assert plan.guard_tripped
    assert plan.held == tuple(flags)


# --------------------------------------------------------------------------------------------
# People One refused recently are skipped, with the reason and when they will be asked again


def test_a_recently_refused_person_is_skipped_not_added() -> None:
    """A person who wants a flag but whom One refused until later is listed as skipped, with reason and retry time."""
    later = NOW + timedelta(minutes=30)
    refused = {"P1": Refusal("PERSON_ARCHIVED", later)}
    plan = build_plan(gather([rec("r1", "P1"), rec("r2", "P2")]), [], NOW, Rules(), refusals=refused.get)
    assert plan.adds == ("P2",)
    assert plan.skipped == (Skipped("P1", "PERSON_ARCHIVED", later),)
    assert plan.has_changes  # P2 is still to add


def test_a_refusal_whose_time_is_up_is_asked_again() -> None:
    """Once the back-off has passed (retry at or before now), the person is added again as usual."""
    refused = {"P1": Refusal("PERSON_MERGED", NOW)}
    plan = build_plan(gather([rec("r1", "P1")]), [], NOW, Rules(), refusals=refused.get)
    assert plan.adds == ("P1",)
    assert plan.skipped == ()


def test_a_refusal_never_keeps_a_flag_that_should_go_or_skips_one_already_there() -> None:
    """Refusals concern adds only: a withdrawn person's flag is still removed, and a present wanted flag is unchanged."""
    refusals = {p: Refusal("RECORD_RESTRICTED", NOW + timedelta(hours=1)) for p in ("P1", "P2")}.get
    items = [rec("r1", "P1", Decision.WITHDRAWN, informed=None, consented_by=None), rec("r2", "P2")]
    current = [Flag("INV-1", "P1", 1), Flag("INV-2", "P2", 1)]
    plan = build_plan(gather(items), current, NOW, Rules(), refusals=refusals)
    assert plan.removes == (Flag("INV-1", "P1", 1),)
    assert plan.unchanged == ("P2",)
    assert plan.skipped == ()


def test_only_skipped_people_means_nothing_to_change() -> None:
    """A plan whose only would-be add is skipped has no changes (exit 0 for plan)."""
    refused = {"P1": Refusal("PERSON_ARCHIVED", NOW + timedelta(hours=1))}
    plan = build_plan(gather([rec("r1", "P1")]), [], NOW, Rules(), refusals=refused.get)
    assert not plan.has_changes
    assert [s.person_id for s in plan.skipped] == ["P1"]


def test_a_scoped_plan_names_the_people_nothing_concerns() -> None:
    """In a scoped plan, a person with no consent record and no flag in One is listed as not found; others are not."""
    items = [rec("r1", "P1")]
    current = [Flag("INV-9", "P9", 1)]
    plan = build_plan(gather(items), current, NOW, Rules(), scope=frozenset({"P1", "P9", "P404"}))
    assert plan.scope == frozenset({"P1", "P9", "P404"})
    assert plan.not_found == ("P404",)
    assert build_plan(gather(items), current, NOW, Rules()).not_found == ()
