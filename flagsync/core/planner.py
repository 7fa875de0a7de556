"""The planner: from gathered consent evidence and One's current flags, the plan of a run.

Pure: no I/O, no clock, no logging; the same inputs give the same plan, with every part sorted.

Scope. With `scope=None` (full reconcile) every person named in the source gets a verdict and every
listed flag whose person does not want one is removed, including flags of people absent from the
source. With a scope (person-scoped sync) only those people are considered: one in scope with no
record wants no flag, and flags of people outside the scope are ignored entirely (neither removed,
nor unchanged, nor counted). The plan never removes a flag that is not in `current`.

Several flags of ours on one person: when a flag is wanted the one with the lowest involvement id is
kept and the rest are removed; otherwise all are removed.

Mass-removal guard. With R the number of flags to remove and C the number of distinct current flags
considered (in scope), the guard trips when

    R > rules.max_removals,  or  R > 1 and R > rules.max_removal_fraction * C

(the fraction is taken as the decimal it is written as, so "exactly at the limit" never trips by float
rounding; a single removal never trips the fraction test, so one family's withdrawal always goes
through). A scoped plan is held to the absolute limit only: its few flags say nothing about the
fraction of One, and siblings withdrawing together must not wait for an operator.

When the guard trips and the run is not `allow_mass_removal`, nothing is removed: every removal is
`held` and `guard_tripped` is set. Adds proceed either way. With `allow_mass_removal` the removals go
ahead and `guard_tripped` stays False (it means "removals are being held").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from fractions import Fraction

from flagsync.core.model import ATTENTION_VERDICTS, Attention, Flag, Plan, Rules, Verdict
from flagsync.core.rule import Gathered, verdict

__all__ = ["build_plan", "guard_trips"]


def guard_trips(removals: int, current_flags: int | None, rules: Rules) -> bool:
    """Whether `removals` out of `current_flags` is a mass removal under `rules` (see the module docstring).

    `current_flags` None: the share of One is unknown (a scoped plan), so only the absolute limit applies.
    """
    if removals > rules.max_removals:
        return True
    if current_flags is None:
        return False
    # repr() gives the shortest decimal that round-trips, i.e. what was configured: 0.1, not 0.1000000000000000055...
    limit = Fraction(repr(float(rules.max_removal_fraction))) * current_flags
    return removals > 1 and removals > limit


def build_plan(
    gathered: Gathered,
    current: Iterable[Flag],
    now: datetime,
    rules: Rules,
    *,
    scope: frozenset[str] | None = None,
    allow_mass_removal: bool = False,
) -> Plan:
    """The plan that brings `current` (our flags as One lists them) in line with `gathered` at `now`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")

    def in_scope(person_id: str) -> bool:
        return scope is None or person_id in scope

    flags_by_person: dict[str, list[Flag]] = defaultdict(list)
    for flag in set(current):  # One may list a flag twice (paging); it is still one flag
        if in_scope(flag.person_id):
            flags_by_person[flag.person_id].append(flag)
    considered_flags = sum(len(flags) for flags in flags_by_person.values())

    verdicts: dict[str, Verdict] = {}
    attention: list[Attention] = []
    for person_id in sorted(gathered.people):
        if not in_scope(person_id):
            continue
        evidence = gathered.people[person_id]
        person_verdict = verdict(evidence.deciding, uncertain=evidence.uncertain, now=now, rules=rules)
        verdicts[person_id] = person_verdict
        if person_verdict in ATTENTION_VERDICTS and evidence.deciding is not None:
            attention.append(Attention(person_id=person_id, record_id=evidence.deciding.record_id, verdict=person_verdict))

    wanted = {person_id for person_id, person_verdict in verdicts.items() if person_verdict.wants_flag}
    adds = sorted(wanted - flags_by_person.keys())
    unchanged: list[str] = []
    removals: list[Flag] = []
    for person_id, flags in flags_by_person.items():
        flags.sort()
        if person_id in wanted:
            unchanged.append(person_id)
            removals.extend(flags[1:])
        else:
            removals.extend(flags)
    removals.sort()

    if scope is None:
        quarantined, unmatched = gathered.quarantined, gathered.unmatched
    else:  # only what concerns the people in scope; unmatched records name nobody
        quarantined, unmatched = tuple(q for q in gathered.quarantined if q.person_id in scope), ()

    held: list[Flag] = []
    tripped = guard_trips(len(removals), considered_flags if scope is None else None, rules) and not allow_mass_removal
    if tripped:
        removals, held = [], removals

    return Plan(
        adds=tuple(adds),
        removes=tuple(removals),
        held=tuple(held),
        unchanged=tuple(sorted(unchanged)),
        unmatched=unmatched,
        quarantined=quarantined,
        attention=tuple(attention),
        current_flags=considered_flags,
        guard_tripped=tripped,
        verdicts=verdicts,
    )
