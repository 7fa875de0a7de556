"""The compact fold and its key table against plain-dict reference implementations, by property."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.core.fold import _ROW, _RULE_FIELDS, VERDICTS, Evidence, Gathered, Gatherer, compact_store, gather
from flagsync.core.keytable import KeyTable
from flagsync.core.model import Flag, QuarantinedRecord, QuarantineReason, Rules, SourceItem
from flagsync.core.planner import build_plan, verdict_counts
from flagsync.core.rule import more_decisive
from tests.core.builders import T0, consent_records, current_flags, quarantined_records, rec, source_items
from tests.core.test_properties import nows, rules_strategy, scopes

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_gather(items: list[SourceItem]) -> Gathered:
    """The fold as it was before the compact store: a dict of Evidence holding whole records."""
    people: dict[str, Evidence] = {}
    quarantined: list[QuarantinedRecord] = []
    unmatched: list[str] = []
    for item in items:
        if isinstance(item, QuarantinedRecord):
            quarantined.append(item)
            if item.person_id is not None:
                known = people.get(item.person_id)
                people[item.person_id] = Evidence(uncertain=True, deciding=None if known is None else known.deciding)
            continue
        if item.person_id is None:
            unmatched.append(item.record_id)
            continue
        known = people.get(item.person_id)
        if known is None:
            people[item.person_id] = Evidence(uncertain=False, deciding=item)
        else:
            deciding = item if known.deciding is None else more_decisive(known.deciding, item)
            people[item.person_id] = Evidence(uncertain=known.uncertain, deciding=deciding)
    order = sorted(people)
    return Gathered(
        people=MappingProxyType({p: people[p] for p in order}),
        quarantined=tuple(
            sorted(quarantined, key=lambda q: (q.person_id or "", q.record_id or "", q.reason.value, q.field or ""))
        ),
        unmatched=tuple(sorted(unmatched)),
    )


# Records whose timestamps are not in datetime.UTC (so the store must keep them whole), and odd record ids.
OTHER_ZONE = timezone(timedelta(hours=1))
odd_records = st.builds(
    lambda r, shift, rid: replace(
        r,
        record_id=rid,
        recorded_at=r.recorded_at.astimezone(OTHER_ZONE) if shift else r.recorded_at,
        updated_at=T0 + timedelta(microseconds=7) if not shift else None,
    ),
    consent_records,
    st.booleans(),
    st.sampled_from(["r0001", "r0001\u00e9", "r\U0001f600", "r\ud800", "", "r" * 128]),
)
mixed_items = st.lists(st.one_of(consent_records, odd_records, quarantined_records), max_size=14)


@PROPERTY
@given(mixed_items)
def test_compact_fold_equals_the_reference_fold(items: list[SourceItem]) -> None:
    """Per person the compact fold gives back the same uncertainty and an equal deciding record, with the same lists."""
    compact, reference = gather(items), reference_gather(items)
    assert list(compact.people) == list(reference.people)
    for person in reference.people:
        got, want = compact.people[person], reference.people[person]
        assert got == want
        assert repr(got.deciding) == repr(want.deciding)  # the same types and time zones, not merely equal instants
    assert compact.quarantined == reference.quarantined
    assert compact.unmatched == reference.unmatched


@PROPERTY
@given(source_items(), current_flags(), nows, rules_strategy, scopes, st.booleans())
def test_compact_plan_equals_the_reference_plan(  # noqa: PLR0917 - hypothesis passes each strategy positionally
    items: list[SourceItem], current: list[Flag], now: datetime, rules: Rules, scope: frozenset[str] | None, allow: bool
) -> None:
    """The planner's compact path gives the plan (verdicts and attention included) its mapping path gives."""
    compact = build_plan(gather(items), current, now, rules, scope=scope, allow_mass_removal=allow)
    reference = build_plan(reference_gather(items), current, now, rules, scope=scope, allow_mass_removal=allow)
    assert compact == reference
    assert list(compact.verdicts.items()) == list(reference.verdicts.items())
    assert len(compact.verdicts) == len(reference.verdicts)
    assert verdict_counts(compact.verdicts) == Counter(reference.verdicts.values())
    for person in ("A", "E", "nobody"):
        assert (person in compact.verdicts) == (person in reference.verdicts)


@PROPERTY
@given(mixed_items, nows, rules_strategy)
def test_every_persons_verdict_code_is_their_verdict(items: list[SourceItem], now: datetime, rules: Rules) -> None:
    """The one-pass verdict codes a full reconcile plans from say, person by person, what verdict_of says."""
    store = compact_store(gather(items))
    assert store is not None
    now_micros = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    accepted = store.accepted_numbers(rules)
    codes = store.verdict_codes(now_micros, now, rules, accepted)
    assert len(codes) == len(store.people)
    assert [VERDICTS[code] for code in codes] == [
        store.verdict_of(number, now_micros, now, rules, accepted) for number in range(len(store.people))
    ]


def test_the_rule_fields_span_a_whole_row() -> None:
    """The pass over every row steps by the row's width, so each person's fields are read from their own row."""
    assert _RULE_FIELDS.size == _ROW.size


def test_snapshot_survives_later_additions_of_every_kind() -> None:
    """A result taken before more records, quarantines and unmatched rows arrive keeps its own people and lists."""
    gatherer = Gatherer()
    gatherer.add(rec("r1", "P1"))
    first = gatherer.result()
    gatherer.add(rec("r2", "P1", recorded_at=T0 + timedelta(days=1)))
    gatherer.add(QuarantinedRecord("q1", "P2", QuarantineReason.BAD_BOOLEAN, "informed"))
    gatherer.add(rec("r3", None))
    assert dict(first.people) == {"P1": Evidence(uncertain=False, deciding=rec("r1", "P1"))}
    assert (first.quarantined, first.unmatched) == ((), ())
    second = gatherer.result()
    assert second.people["P1"].deciding == rec("r2", "P1", recorded_at=T0 + timedelta(days=1))
    assert second.people["P2"] == Evidence(uncertain=True, deciding=None)
    assert second.unmatched == ("r3",)


def test_fold_holds_under_a_hundred_bytes_a_person() -> None:
    """The store's own buffers for 20,000 people with 11-character record ids stay under 100 bytes a person."""
    gatherer = Gatherer()
    for n in range(20_000):
        gatherer.add(
            replace(rec(f"CR-{n:08d}", f"P{n:07d}"), recorded_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=n))
        )
    store = gatherer.result().people._store  # type: ignore[attr-defined]  # looking inside on purpose
    held = store.people.nbytes() + len(store.rows) + len(store.record_ids)
    assert held / 20_000 < 100


keys = st.text(max_size=12) | st.sampled_from(["", "P1", "p1", "P1 ", "\ud800", "\U0001f600", "x" * 300])


@PROPERTY
@given(st.lists(keys, max_size=300), st.lists(keys, max_size=20))
def test_key_table_behaves_like_a_dict(added: list[str], probes: list[str]) -> None:
    """Numbers are handed out in first-seen order, found again, and give their key back, through growth and copies."""
    table, reference = KeyTable(), {}
    for key in added:
        number, new = table.add(key)
        assert new == (key not in reference)
        reference.setdefault(key, len(reference))
        assert number == reference[key]
    assert len(table) == len(reference)
    assert table.keys() == list(reference)
    assert list(table.encoded_keys()) == [key.encode("utf-8", "surrogatepass") for key in reference]
    copy = table.copy()
    copy.add("only-in-the-copy\u2603")
    assert "only-in-the-copy\u2603" not in table
    for key in added + probes:
        assert table.index(key) == reference.get(key, -1)
        assert (key in table) == (key in reference)
    for key, number in reference.items():
        assert table.key(number) == key
