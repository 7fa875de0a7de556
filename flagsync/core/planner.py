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

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import groupby
from operator import attrgetter

from flagsync.core.fold import VERDICTS, CompactStore, Gathered, compact_store
from flagsync.core.model import ATTENTION_VERDICTS, Attention, Flag, Plan, Refusal, Rules, Skipped, Verdict
from flagsync.core.rule import verdict

__all__ = ["build_plan", "guard_trips", "verdict_counts"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_person_of = attrgetter("person_id")


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
    refusals: Callable[[str], Refusal | None] | None = None,
) -> Plan:
    """The plan that brings `current` (our flags as One lists them) in line with `gathered` at `now`.

    `refusals` says, for a person the plan would add, whether One refused them recently: then they
    are `skipped` until the refusal's `retry_at` (a converged system must not knock on One's door for
    an archived person every cycle), and listed so, with the reason and when they will be tried again.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")

    def in_scope(person_id: str) -> bool:
        return scope is None or person_id in scope

    # Our flags grouped by person (a sort on the person id the flags already hold, no per-person
    # containers: a million-person run lists a hundred thousand flags). One may list a flag twice
    # (paging); it is still one flag.
    flags = [flag for flag in current if in_scope(flag.person_id)]
    flags.sort(key=_person_of)
    flagged: list[str] = []
    considered_flags = 0
    for person_id, group in groupby(flags, key=_person_of):
        flagged.append(person_id)
        considered_flags += len(set(group))

    store = compact_store(gathered)
    verdicts: Mapping[str, Verdict]
    if store is None:
        verdicts, wanted, attention = _decide_each(gathered, now, rules, in_scope)
        adds = sorted(wanted.difference(flagged))
    else:
        verdicts, wanted, adds, attention = _decide_compact(store, flagged, now, rules, scope)
    unchanged: list[str] = []
    removals: list[Flag] = []
    for person_id, group in groupby(flags, key=_person_of):
        distinct = sorted(set(group))  # the lowest involvement id first
        if person_id in wanted:
            unchanged.append(person_id)
            removals.extend(distinct[1:])
        else:
            removals.extend(distinct)
    del flags
    removals.sort()

    if scope is None:
        quarantined, unmatched = gathered.quarantined, gathered.unmatched
    else:  # only what concerns the people in scope; unmatched records name nobody
        quarantined, unmatched = tuple(q for q in gathered.quarantined if q.person_id in scope), ()

    held: list[Flag] = []
    tripped = guard_trips(len(removals), considered_flags if scope is None else None, rules) and not allow_mass_removal
    if tripped:
        removals, held = [], removals

    adds, skipped = _skip_refused(adds, refusals, now)

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
        skipped=tuple(skipped),
        scope=scope,
        verdicts=verdicts,
    )


def _skip_refused(
    adds: list[str], refusals: Callable[[str], Refusal | None] | None, now: datetime
) -> tuple[list[str], list[Skipped]]:
    """Split the people to add into those to ask One for and those One refused until after `now`."""
    if refusals is None:
        return adds, []
    asked: list[str] = []
    skipped: list[Skipped] = []
    for person_id in adds:
        refusal = refusals(person_id)
        if refusal is not None and refusal.retry_at > now:
            skipped.append(Skipped(person_id, refusal.reason, refusal.retry_at))
        else:
            asked.append(person_id)
    return asked, skipped


def verdict_counts(verdicts: Mapping[str, Verdict]) -> Counter[Verdict]:
    """How many people got each verdict; for a big plan's verdicts without building every person id."""
    if isinstance(verdicts, _CompactVerdicts):
        return verdicts.counts()
    return Counter(verdicts.values())


def _decide_each(
    gathered: Gathered, now: datetime, rules: Rules, in_scope: Callable[[str], bool]
) -> tuple[dict[str, Verdict], set[str], list[Attention]]:
    """Every person's verdict from an ordinary mapping of evidence (the reference way)."""
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
    return verdicts, wanted, attention


def _decide_compact(
    store: CompactStore, flagged: Iterable[str], now: datetime, rules: Rules, scope: frozenset[str] | None
) -> tuple[_CompactVerdicts, set[str], list[str], list[Attention]]:
    """The same from the fold's compact store, building a person id string only for what the plan lists.

    Returns the verdicts (one byte a person for a full reconcile, worked out again on access for a
    scoped plan), the flagged people who want their flag, the people to add (sorted) and the
    attention list (in person id order).
    """
    verdicts = _CompactVerdicts(store, now, rules, scope)
    if scope is None:
        wanted, adds, attention = _decide_all(store, verdicts.codes(), flagged)
    else:
        wanted, adds, attention = _decide_scoped(store, verdicts.of_number, flagged, scope)
    adds.sort()
    attention.sort(key=_person_of)
    return verdicts, wanted, adds, attention


def _decide_scoped(
    store: CompactStore, decide_one: Callable[[int], Verdict], flagged: Iterable[str], scope: frozenset[str]
) -> tuple[set[str], list[str], list[Attention]]:
    """A scoped plan's wanted flags, adds and attention list (both unsorted), a verdict worked out for each person in scope."""
    people = store.people
    wanted: set[str] = set()
    for person_id in flagged:
        number = people.index(person_id)
        if number >= 0 and decide_one(number) is Verdict.GRANTED:
            wanted.add(person_id)
    adds: list[str] = []
    attention: list[Attention] = []
    for number in sorted(n for n in (people.index(p) for p in scope) if n >= 0):
        person_verdict = decide_one(number)
        if person_verdict is Verdict.GRANTED:
            person_id = people.key(number)
            if person_id not in wanted:  # a granted person with a flag is in `wanted`; without one, an add
                adds.append(person_id)
        elif person_verdict in ATTENTION_VERDICTS:
            _attend(store, number, person_verdict, attention)
    return wanted, adds, attention


def _decide_all(store: CompactStore, codes: bytes, flagged: Iterable[str]) -> tuple[set[str], list[str], list[Attention]]:
    """A full reconcile's wanted flags, adds and attention list (both unsorted) from every person's verdict code.

    Only the granted and the attention people are visited (`bytes.find` skips the rest in C).
    """
    people = store.people
    granted = _GRANTED_CODE
    has_flag = bytearray(len(people))
    wanted: set[str] = set()
    for person_id in flagged:
        number = people.index(person_id)
        if number >= 0:
            has_flag[number] = 1
            if codes[number] == granted:
                wanted.add(person_id)
    adds: list[str] = []
    number = codes.find(granted)
    while number >= 0:
        if not has_flag[number]:
            adds.append(people.key(number))
        number = codes.find(granted, number + 1)
    attention: list[Attention] = []
    marks = codes.translate(_ATTENTION_MARKS)
    number = marks.find(1)
    while number >= 0:
        _attend(store, number, VERDICTS[codes[number]], attention)
        number = marks.find(1, number + 1)
    return wanted, adds, attention


def _attend(store: CompactStore, number: int, person_verdict: Verdict, attention: list[Attention]) -> None:
    record_id = store.record_id(number)
    if record_id is not None:
        attention.append(Attention(person_id=store.people.key(number), record_id=record_id, verdict=person_verdict))


#: Verdict codes (positions in VERDICTS): granted, and a byte table marking the attention verdicts with 1.
_GRANTED_CODE = VERDICTS.index(Verdict.GRANTED)
_ATTENTION_MARKS = bytes(1 if n < len(VERDICTS) and VERDICTS[n] in ATTENTION_VERDICTS else 0 for n in range(256))


class _CompactVerdicts(Mapping[str, Verdict]):
    """`Plan.verdicts` over the fold's compact store: each verdict is worked out when asked for.

    Iterates in person id order like the dict it stands for; iterating builds every person id, so
    code that only needs the totals uses `verdict_counts`.
    """

    __slots__ = ("_accepted", "_codes", "_now", "_now_micros", "_rules", "_scope", "_store")

    def __init__(self, store: CompactStore, now: datetime, rules: Rules, scope: frozenset[str] | None) -> None:
        self._store = store
        self._now = now
        self._now_micros = (now - _EPOCH) // _MICROSECOND
        self._rules = rules
        self._scope = scope
        self._accepted = store.accepted_numbers(rules)
        self._codes: bytes | None = None

    def codes(self) -> bytes:
        """Every person's verdict as its position in VERDICTS, one byte a person (worked out once)."""
        if self._codes is None:
            self._codes = self._store.verdict_codes(self._now_micros, self._now, self._rules, self._accepted)
        return self._codes

    def of_number(self, number: int) -> Verdict:
        if self._codes is not None:
            return VERDICTS[self._codes[number]]
        return self._store.verdict_of(number, self._now_micros, self._now, self._rules, self._accepted)

    def __getitem__(self, person_id: str) -> Verdict:
        number = self._store.people.index(person_id) if isinstance(person_id, str) else -1
        if number < 0 or (self._scope is not None and person_id not in self._scope):
            raise KeyError(person_id)
        return self.of_number(number)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._store.people and (self._scope is None or person_id in self._scope)

    def __iter__(self) -> Iterator[str]:
        if self._scope is None:
            return iter(sorted(self._store.people.keys()))
        return iter(sorted(p for p in self._scope if p in self._store.people))

    def __len__(self) -> int:
        if self._scope is None:
            return len(self._store.people)
        return sum(1 for p in self._scope if p in self._store.people)

    def __repr__(self) -> str:
        return f"<verdicts of {len(self)} people>"

    def counts(self) -> Counter[Verdict]:
        if self._scope is None:
            codes = self.codes()
            return Counter({v: n for v, n in ((v, codes.count(code)) for code, v in enumerate(VERDICTS)) if n})
        people = self._store.people
        return Counter(self.of_number(n) for n in (people.index(p) for p in self._scope) if n >= 0)
