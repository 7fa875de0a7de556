"""Hypothesis properties of the consent rule and the planner over small pools of people, times and ids."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.core.fold import gather
from flagsync.core.model import ConsentRecord, Decision, Flag, Plan, QuarantinedRecord, Rules, SourceItem, Verdict
from flagsync.core.planner import build_plan
from flagsync.core.rule import decide, more_decisive, verdict
from tests.core.builders import PEOPLE, T0, consent_records, current_flags, one_persons_records, source_items

#: Modest and local (not a global profile): the machine is shared and other suites set their own.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

rules_strategy = st.builds(
    Rules,
    accepted_versions=st.sampled_from((frozenset(), frozenset({"v1"}), frozenset({"v1", "v2"}))),
    max_removals=st.integers(min_value=0, max_value=6),
    max_removal_fraction=st.sampled_from((0.0, 0.1, 0.5, 1.0)),
)
nows = st.integers(min_value=0, max_value=9).map(lambda h: T0 + timedelta(days=h * 30))
scopes = st.none() | st.frozensets(st.sampled_from((*PEOPLE, "E", "Z")), max_size=3)


def by_person(items: list[SourceItem]) -> dict[str, list[SourceItem]]:
    grouped: dict[str, list[SourceItem]] = defaultdict(list)
    for item in items:
        if item.person_id is not None:
            grouped[item.person_id].append(item)
    return grouped


def apply(plan: Plan, current: list[Flag]) -> list[Flag]:
    """What One would list after a plan is carried out in full (held flags stay)."""
    removed = set(plan.removes)
    after = [f for f in current if f not in removed]
    after += [Flag(involvement_id=f"new-{person}", person_id=person, version=1) for person in plan.adds]
    return after


# ---------------------------------------------------------------------------------------------
# more_decisive


@PROPERTY
@given(consent_records, consent_records, consent_records)
def test_more_decisive_is_a_selection_commutative_and_associative(a: ConsentRecord, b: ConsentRecord, c: ConsentRecord) -> None:
    """more_decisive returns one of its arguments and does not depend on argument order or grouping."""
    assert more_decisive(a, b) in (a, b)
    assert more_decisive(a, b) == more_decisive(b, a)
    assert more_decisive(more_decisive(a, b), c) == more_decisive(a, more_decisive(b, c))


@PROPERTY
@given(consent_records, consent_records)
def test_more_decisive_never_prefers_an_older_record(a: ConsentRecord, b: ConsentRecord) -> None:
    """The winner is never older than the loser."""
    winner = more_decisive(a, b)
    loser = b if winner is a else a
    assert winner.recorded_at >= loser.recorded_at


# ---------------------------------------------------------------------------------------------
# The consent rule


@PROPERTY
@given(source_items(), nows, rules_strategy)
def test_newest_refusal_or_withdrawal_means_no_flag(items: list[SourceItem], now: datetime, rules: Rules) -> None:
    """A person whose valid refusal or withdrawal is at least as new as every grant never gets a flag."""
    plan = build_plan(gather(items), [], now, rules)
    for person, records in by_person(items).items():
        valid = [r for r in records if isinstance(r, ConsentRecord)]
        stops = [r.recorded_at for r in valid if r.decision is not Decision.GRANTED]
        grants = [r.recorded_at for r in valid if r.decision is Decision.GRANTED]
        if stops and (not grants or max(stops) >= max(grants)):
            assert person not in plan.adds
            assert not plan.verdicts[person].wants_flag


@PROPERTY
@given(one_persons_records(), st.randoms(use_true_random=False), nows, rules_strategy)
def test_tied_refusal_or_withdrawal_beats_any_grant(
    records: list[ConsentRecord], rnd: random.Random, now: datetime, rules: Rules
) -> None:
    """Among one person's records, a refusal or withdrawal at least as new as every grant wins, in any record order."""
    rnd.shuffle(records)
    stops = [r.recorded_at for r in records if r.decision is not Decision.GRANTED]
    grants = [r.recorded_at for r in records if r.decision is Decision.GRANTED]
    result = decide(records, now, rules)
    if stops and (not grants or max(stops) >= max(grants)):
        assert result in (Verdict.REFUSED, Verdict.WITHDRAWN)
    latest = max(r.recorded_at for r in records)
    if any(r.decision is Decision.WITHDRAWN and r.recorded_at == latest for r in records):
        assert result is Verdict.WITHDRAWN


@PROPERTY
@given(source_items(), current_flags(), nows, rules_strategy)
def test_quarantined_record_means_no_flag(items: list[SourceItem], current: list[Flag], now: datetime, rules: Rules) -> None:
    """A person with any quarantined record is uncertain, is never added and never kept."""
    plan = build_plan(gather(items), current, now, rules)
    for item in items:
        if isinstance(item, QuarantinedRecord) and item.person_id is not None:
            assert plan.verdicts[item.person_id] is Verdict.UNCERTAIN
            assert item.person_id not in plan.adds
            assert item.person_id not in plan.unchanged


@PROPERTY
@given(source_items(), nows, rules_strategy)
def test_streaming_fold_agrees_with_whole_list_rule(items: list[SourceItem], now: datetime, rules: Rules) -> None:
    """For every person, the Gatherer's verdict equals decide() over that person's records."""
    gathered = gather(items)
    assert set(gathered.people) == set(by_person(items))
    for person, records in by_person(items).items():
        evidence = gathered.people[person]
        assert verdict(evidence.deciding, uncertain=evidence.uncertain, now=now, rules=rules) is decide(records, now, rules)


@PROPERTY
@given(source_items(), st.randoms(use_true_random=False), nows, rules_strategy)
def test_record_order_does_not_matter(items: list[SourceItem], rnd: random.Random, now: datetime, rules: Rules) -> None:
    """Shuffling the source gives the same gathered evidence and the same plan."""
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert gather(shuffled) == gather(items)
    assert build_plan(gather(shuffled), [], now, rules) == build_plan(gather(items), [], now, rules)


# ---------------------------------------------------------------------------------------------
# The planner


@PROPERTY
@given(items=source_items(), current=current_flags(), now=nows, rules=rules_strategy, scope=scopes, allow=st.booleans())
def test_plan_only_removes_listed_flags_and_never_both_adds_and_removes(
    *, items: list[SourceItem], current: list[Flag], now: datetime, rules: Rules, scope: frozenset[str] | None, allow: bool
) -> None:
    """Removed and held flags come from `current`, and no person is both added and stripped of a flag."""
    plan = build_plan(gather(items), current, now, rules, scope=scope, allow_mass_removal=allow)
    assert set(plan.removes) <= set(current)
    assert set(plan.held) <= set(current)
    assert not set(plan.removes) & set(plan.held)
    assert not set(plan.adds) & {f.person_id for f in (*plan.removes, *plan.held)}
    assert not set(plan.adds) & set(plan.unchanged)
    if scope is not None:
        touched = {*plan.adds, *plan.unchanged, *(f.person_id for f in (*plan.removes, *plan.held)), *plan.verdicts}
        assert touched <= scope
    if plan.held:
        assert plan.guard_tripped and not plan.removes and not allow


@PROPERTY
@given(source_items(), current_flags(), nows, rules_strategy)
def test_everyone_kept_or_added_wants_a_flag(items: list[SourceItem], current: list[Flag], now: datetime, rules: Rules) -> None:
    """Exactly the people with a GRANTED verdict end up added or unchanged."""
    plan = build_plan(gather(items), current, now, rules)
    wanted = {p for p, v in plan.verdicts.items() if v.wants_flag}
    assert set(plan.adds) | set(plan.unchanged) == wanted


@PROPERTY
@given(source_items(), current_flags(), nows, rules_strategy, scopes)
def test_applying_a_plan_converges(
    items: list[SourceItem], current: list[Flag], now: datetime, rules: Rules, scope: frozenset[str] | None
) -> None:
    """After a released plan is applied, planning again with the same records has nothing to do."""
    gathered = gather(items)
    first = build_plan(gather(items), current, now, rules, scope=scope, allow_mass_removal=True)
    second = build_plan(gathered, apply(first, current), now, rules, scope=scope)
    assert (second.adds, second.removes, second.held) == ((), (), ())
    assert not second.guard_tripped


@PROPERTY
@given(items=source_items(), current=current_flags(), now=nows, rules=rules_strategy, scope=scopes, allow=st.booleans())
def test_same_inputs_same_plan(
    *, items: list[SourceItem], current: list[Flag], now: datetime, rules: Rules, scope: frozenset[str] | None, allow: bool
) -> None:
    """The planner is a pure function: same inputs, same plan (verdicts included), whatever the flag order."""
    a = build_plan(gather(items), current, now, rules, scope=scope, allow_mass_removal=allow)
    b = build_plan(gather(items), list(reversed(current)), now, rules, scope=scope, allow_mass_removal=allow)
    assert a == b
    assert list(a.verdicts.items()) == list(b.verdicts.items())


@PROPERTY
@given(source_items(), current_flags(), nows)
def test_guard_never_holds_a_single_removal_below_the_absolute_limit(
    items: list[SourceItem], current: list[Flag], now: datetime
) -> None:
    """With the default rules, a plan with one removal is never held, whatever the fraction."""
    plan = build_plan(gather(items), current, now, Rules(max_removal_fraction=0.0))
    if len(plan.removes) + len(plan.held) == 1:
        assert not plan.guard_tripped
