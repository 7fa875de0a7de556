"""The rule's refusals and the fold's compact store at their edges: odd zones, odd ids, snapshots, lookups, digests."""

from __future__ import annotations

import dataclasses
from array import array
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest

from flagsync.core.digests import PersonDigests
from flagsync.core.disclosure import Figure, disclose
from flagsync.core.fold import Evidence, Gatherer, compact_store, gather
from flagsync.core.keytable import KeyTable
from flagsync.core.model import CaseStatus, Decision, Flag, QuarantinedRecord, QuarantineReason, Rules, Verdict
from flagsync.core.planner import build_plan, verdict_counts
from flagsync.core.rule import decide, verdict
from tests.core.builders import NOW, T0, bad, rec

RULES = Rules()


class _NoOffset(tzinfo):
    """A tzinfo that knows no offset: a datetime carrying it is as good as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_the_rule_refuses_a_now_whose_zone_has_no_offset() -> None:
    """A `now` with a tzinfo that gives no UTC offset is as unusable as a naive one: ValueError, saying why."""
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        verdict(rec(), uncertain=False, now=NOW.replace(tzinfo=_NoOffset()), rules=RULES)
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        verdict(rec(), uncertain=False, now=NOW.replace(tzinfo=None), rules=RULES)


def test_verdict_without_a_deciding_record_names_the_mistake() -> None:
    """A certain person needs a deciding record; asking without one is a ValueError that says so."""
    with pytest.raises(ValueError, match=r"^a person who is not uncertain needs a deciding record$"):
        verdict(None, uncertain=False, now=NOW, rules=RULES)


def test_decide_checks_every_valid_record_even_after_a_quarantined_one() -> None:
    """decide() refuses records of two people even when a quarantined record comes first."""
    with pytest.raises(ValueError, match=r"^decide\(\) takes the records of one person only$"):
        decide([bad(person_id="P1"), rec("r1", "P1"), rec("r2", "P2")], NOW, RULES)


def test_a_snapshot_is_not_changed_by_what_is_added_after_it() -> None:
    """result() is a snapshot: later records, new consent versions and records kept whole do not reach it."""
    gatherer = Gatherer()
    gatherer.add(rec("r1", "P1", consent_version="v1"))
    first = gatherer.result()
    odd_zone = timezone(timedelta(hours=1))  # not datetime.UTC: such a record is kept whole
    gatherer.add(rec("r2", "P1", consent_version="v2", recorded_at=T0 + timedelta(hours=1)))
    gatherer.add(rec("r3", "P2", recorded_at=(T0 + timedelta(hours=2)).astimezone(odd_zone)))
    gatherer.add(rec("r4", "P3", consent_version="v3"))
    second = gatherer.result()
    assert dict(first.people) == {"P1": Evidence(uncertain=False, deciding=rec("r1", "P1", consent_version="v1"))}
    assert second.people["P1"].deciding == rec("r2", "P1", consent_version="v2", recorded_at=T0 + timedelta(hours=1))
    assert second.people["P2"].deciding == rec("r3", "P2", recorded_at=(T0 + timedelta(hours=2)).astimezone(odd_zone))
    assert second.people["P3"].deciding == rec("r4", "P3", consent_version="v3")


def test_a_record_kept_whole_gets_the_rules_verdict_in_a_plan() -> None:
    """A deciding record with a timestamp outside datetime.UTC (kept whole) is judged by the rule like any other."""
    odd_zone = timezone(timedelta(hours=-5))
    expired = rec("r1", "P1", expires_at=(NOW - timedelta(days=1)).astimezone(odd_zone))
    granted = rec("r2", "P2", recorded_at=T0.astimezone(odd_zone))
    plan = build_plan(gather([expired, granted]), [Flag("INV-1", "P1", 1)], NOW, RULES)
    assert plan.verdicts["P1"] is Verdict.EXPIRED
    assert plan.verdicts["P2"] is Verdict.GRANTED
    assert [flag.person_id for flag in plan.removes] == ["P1"]
    assert list(plan.adds) == ["P2"]


def test_record_ids_with_lone_surrogates_come_back_unchanged() -> None:
    """A record id holding a lone surrogate (undecodable source bytes, escaped) is kept and given back exactly."""
    odd = "r\ud800x"
    gathered = gather([rec(odd, "P1")])
    assert gathered.people["P1"].deciding == rec(odd, "P1")
    store = compact_store(gathered)
    assert store is not None
    assert store.record_id(store.people.index("P1")) == odd


def test_a_person_with_only_invalid_records_has_no_deciding_record_id() -> None:
    """A person named only by quarantined records has no deciding record: record_id is None, not an empty id."""
    gathered = gather([bad("q1", "P1"), rec("r2", "P2")])
    store = compact_store(gathered)
    assert store is not None
    assert store.record_id(store.people.index("P1")) is None
    assert store.record_id(store.people.index("P2")) == "r2"
    assert gathered.people["P1"] == Evidence(uncertain=True, deciding=None)


def test_people_lookups_by_something_not_a_person_id_fail_like_a_dict() -> None:
    """Gathered.people: an absent id or a non-text key is a KeyError naming the key; `in` answers both ways."""
    gathered = gather([rec("r1", "P1"), rec("r2", "P2"), rec("r3", "P3")])
    for key in ("P9", 1, 0):
        with pytest.raises(KeyError) as raised:
            gathered.people[key]  # type: ignore[index]  # a wrong key on purpose
        assert raised.value.args == (key,)
    assert "P2" in gathered.people
    assert "P9" not in gathered.people
    assert sorted(gathered.people) == ["P1", "P2", "P3"]


def test_keytable_nbytes_is_the_size_of_its_buffers() -> None:
    """nbytes counts the key bytes and every array's items (an int, growing with the keys)."""
    table = KeyTable()
    empty = table.nbytes()
    for n in range(100):
        table.add(f"P{n:04d}")
    buffers = (table._starts, table._hashes, table._slots)
    assert table.nbytes() == len(table._keys) + sum(a.itemsize * len(a) for a in buffers)
    assert isinstance(table.nbytes(), int)
    assert table.nbytes() > empty + 100 * 5


def test_person_digests_start_at_zero_for_the_people_given() -> None:
    """PersonDigests over a given key table uses that table, each person with a zero digest."""
    people = KeyTable()
    people.add("P1")
    people.add("P2")
    digests = PersonDigests(people)
    assert digests.people is people
    assert list(digests.digests) == [0, 0]
    assert len(digests) == 2


def test_person_digests_refuse_a_digest_count_that_is_not_one_per_person() -> None:
    """Digests and people must pair up: otherwise ValueError, saying so."""
    people = KeyTable()
    people.add("P1")
    with pytest.raises(ValueError, match=r"^one digest per person$"):
        PersonDigests(people, array("Q", [1, 2]))


def test_changes_are_found_in_every_block_of_people() -> None:
    """With more people than one comparison block, a change in any block is found, and only the changed people."""
    before, after = PersonDigests(), PersonDigests()
    ids = [f"P{n:05d}" for n in range(10_000)]
    for number, person in enumerate(ids):
        before.add(person, number)
        after.add(person, number + (1 if number in (5, 4_500, 9_999) else 0))
    assert after.changed_since(before) == {"P00005", "P04500", "P09999"}


def test_decide_on_withdrawn_after_quarantined_is_uncertain() -> None:
    """Any invalid record makes the person uncertain, whatever comes after it."""
    assert decide([bad(person_id="P1"), rec("r1", "P1", Decision.WITHDRAWN, recorded_at=datetime.now(UTC))], NOW, RULES) is (
        Verdict.UNCERTAIN
    )


def test_quarantined_records_without_an_id_or_field_sort_first() -> None:
    """Gathered.quarantined is in (person, record id, reason, field) order, a missing id or field before any text."""
    items = [bad("A1", "P1"), bad(None, "P1"), QuarantinedRecord("A1", "P1", QuarantineReason.BAD_BOOLEAN, None)]
    gathered = gather(items)
    assert [(q.record_id, q.field) for q in gathered.quarantined] == [(None, "informed"), ("A1", None), ("A1", "informed")]


def test_records_outside_datetime_utc_come_back_identical_not_just_equal() -> None:
    """A deciding record with another zone, a fold or a datetime subclass is kept as it came: same zone, fold, type."""

    class Stamp(datetime):
        pass

    odd_zone = timezone(timedelta(hours=2))
    cases = [
        rec("r1", "P1", recorded_at=T0.astimezone(odd_zone)),
        rec("r2", "P2", recorded_at=T0.replace(fold=1)),
        rec("r3", "P3", recorded_at=Stamp(2024, 1, 1, 9, 0, tzinfo=UTC)),
        rec("r4", "P4", expires_at=(NOW + timedelta(days=9)).astimezone(odd_zone)),
    ]
    gathered = gather(cases)
    for record in cases:
        assert record.person_id is not None
        deciding = gathered.people[record.person_id].deciding
        assert deciding is not None
        for moment, original in ((deciding.recorded_at, record.recorded_at), (deciding.expires_at, record.expires_at)):
            assert (type(moment), getattr(moment, "tzinfo", None), getattr(moment, "fold", None)) == (
                type(original),
                getattr(original, "tzinfo", None),
                getattr(original, "fold", None),
            )


def test_records_in_datetime_utc_are_kept_compactly() -> None:
    """The usual record (every timestamp in datetime.UTC or absent) is kept field by field, not as a whole object."""
    gathered = gather([rec("r1", "P1"), rec("r2", "P2", expires_at=NOW, consent_version="v1")])
    store = compact_store(gathered)
    assert store is not None
    assert store.whole == {}


def test_one_character_record_ids_of_different_people_do_not_overwrite_each_other() -> None:
    """Each person's deciding record id is their own, however short, and after an invalid record too."""
    gathered = gather([rec("a", "P1"), rec("b", "P2"), bad("q", "P3"), rec("c", "P3")])
    assert {person: evidence.deciding.record_id for person, evidence in gathered.people.items() if evidence.deciding} == {
        "P1": "a",
        "P2": "b",
        "P3": "c",
    }


def test_a_consent_expiring_exactly_now_has_expired() -> None:
    """expires_at at now is EXPIRED (at or before now), in the compact path as in the rule."""
    plan = build_plan(gather([rec("r1", "P1", expires_at=NOW)]), [], NOW, RULES)
    assert plan.verdicts["P1"] is Verdict.EXPIRED
    assert verdict(rec("r1", "P1", expires_at=NOW), uncertain=False, now=NOW, rules=RULES) is Verdict.EXPIRED


@pytest.mark.parametrize("closed_first", [True, False])
def test_a_closed_case_wins_a_tie_over_an_open_one_in_either_order(closed_first: bool) -> None:
    """Two grants recorded at the same instant: the one on a closed case decides, whichever was read first."""
    closed = rec("r2", "P1", case_status=CaseStatus.CLOSED)
    open_ = rec("r1", "P1")
    items = [closed, open_] if closed_first else [open_, closed]
    assert gather(items).people["P1"].deciding == closed
    assert build_plan(gather(items), [], NOW, RULES).verdicts["P1"] is Verdict.CASE_CLOSED


@pytest.mark.parametrize("soonest_first", [True, False])
def test_the_sooner_expiry_wins_a_tie_in_either_order(soonest_first: bool) -> None:
    """Two grants recorded at the same instant, both expiring: the one expiring first decides."""
    soon = rec("r2", "P1", expires_at=NOW + timedelta(days=1))
    later = rec("r1", "P1", expires_at=NOW + timedelta(days=30))
    items = [soon, later] if soonest_first else [later, soon]
    assert gather(items).people["P1"].deciding == soon


def test_a_person_sync_judges_a_record_kept_whole_at_its_now() -> None:
    """A scoped plan judges a deciding record kept whole (outside datetime.UTC) by the rule at the plan's now."""
    odd_zone = timezone(timedelta(hours=-5))
    expired = rec("r1", "P1", expires_at=(NOW - timedelta(days=1)).astimezone(odd_zone))
    plan = build_plan(gather([expired]), [Flag("INV-1", "P1", 1)], NOW, RULES, scope=frozenset({"P1"}))
    assert plan.verdicts["P1"] is Verdict.EXPIRED
    assert [flag.person_id for flag in plan.removes] == ["P1"]


def test_a_person_sync_keeps_the_flag_of_the_first_person_folded() -> None:
    """The person numbered 0 in the fold, granted and flagged, is unchanged in a scoped plan, not added again."""
    gathered = gather([rec("r1", "P1"), rec("r2", "P2")])
    plan = build_plan(gathered, [Flag("INV-1", "P1", 1)], NOW, RULES, scope=frozenset({"P1", "P2"}))
    assert plan.adds == ("P2",)
    assert plan.unchanged == ("P1",)
    assert plan.removes == ()


@pytest.mark.parametrize("scope", [None, frozenset({"P1", "P2", "P3", "P4", "P5", "P6"})])
def test_every_person_needing_attention_is_listed_in_person_id_order(scope: frozenset[str] | None) -> None:
    """Four people needing attention among others, folded out of id order, are all listed, sorted by person id."""
    rules = Rules(accepted_versions=frozenset({"v2"}))
    records = [
        rec("r5", "P5", informed=False),
        rec("r1", "P1", consent_version="v2"),
        rec("r3", "P3", informed=None),
        rec("r6", "P6", consent_version="v1"),
        rec("r2", "P2", informed=False),
        rec("r4", "P4", Decision.REFUSED),
    ]
    plan = build_plan(gather(records), [], NOW, rules, scope=scope)
    assert [(a.person_id, a.record_id, a.verdict) for a in plan.attention] == [
        ("P2", "r2", Verdict.NOT_INFORMED),
        ("P3", "r3", Verdict.NOT_INFORMED),
        ("P5", "r5", Verdict.NOT_INFORMED),
        ("P6", "r6", Verdict.VERSION_NOT_ACCEPTED),
    ]
    assert plan.adds == ("P1",)


def test_build_plan_refuses_a_now_without_an_offset() -> None:
    """build_plan needs an aware now: naive or offset-less zones are a ValueError saying so."""
    for now in (NOW.replace(tzinfo=None), NOW.replace(tzinfo=_NoOffset())):
        with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
            build_plan(gather([]), [], now, RULES)


def test_the_guard_holds_by_default_without_being_asked() -> None:
    """Without allow_mass_removal, a plan over the limit holds its removals: holding is the default."""
    flags = [Flag(f"INV-{n}", f"P{n}", 1) for n in range(60)]
    plan = build_plan(gather([]), flags, NOW, RULES)
    assert plan.guard_tripped
    assert plan.removes == ()
    assert len(plan.held) == 60


def test_the_fraction_guard_holds_a_full_reconcile_under_the_absolute_limit() -> None:
    """A full reconcile removing 5 of 30 flags (17%, under 50 but over 10%) is held by the fraction half of the guard."""
    flags = [Flag(f"INV-{n}", f"P{n:02d}", 1) for n in range(30)]
    records = [rec(f"r{n}", f"P{n:02d}") for n in range(5, 30)]
    plan = build_plan(gather(records), flags, NOW, RULES)
    assert plan.guard_tripped
    assert plan.removes == ()
    assert sorted(flag.person_id for flag in plan.held) == ["P00", "P01", "P02", "P03", "P04"]


def test_duplicate_flags_are_found_whatever_their_involvement_ids_order() -> None:
    """A person's two flags are one too many even when another person's flag sorts between them."""
    flags = [Flag("INV-1", "P2", 1), Flag("INV-2", "P1", 1), Flag("INV-3", "P2", 1)]
    plan = build_plan(gather([rec("r1", "P1"), rec("r2", "P2")]), flags, NOW, RULES, allow_mass_removal=True)
    assert [flag.person_id for flag in plan.removes] == ["P2"]
    assert sorted(plan.unchanged) == ["P1", "P2"]


def test_a_negative_count_is_refused_saying_so() -> None:
    """Counts of families are never negative: disclose and Figure.of refuse one with that message."""
    with pytest.raises(ValueError, match=r"^a count cannot be negative$"):
        disclose(-1)
    for exact in (True, False):
        with pytest.raises(ValueError, match=r"^a count cannot be negative$"):
            Figure.of(-1, exact=exact)


def test_verdict_counts_counts_each_verdict() -> None:
    """verdict_counts: how many people got each verdict."""
    plan = build_plan(gather([rec("r1", "P1"), rec("r2", "P2"), rec("r3", "P3", Decision.WITHDRAWN)]), [], NOW, RULES)
    assert verdict_counts(plan.verdicts) == Counter({Verdict.GRANTED: 2, Verdict.WITHDRAWN: 1})


def test_plan_verdicts_answer_only_for_people_in_the_plan() -> None:
    """plan.verdicts: a KeyError naming the key for anyone not in the source, not text, or outside a scoped plan's scope."""
    gathered = gather([rec("r1", "P1"), rec("r2", "P2"), rec("r3", "P3")])
    full = build_plan(gathered, [], NOW, RULES)
    scoped = build_plan(gathered, [], NOW, RULES, scope=frozenset({"P2"}))
    assert scoped.verdicts["P2"] is Verdict.GRANTED
    for verdicts, key in (
        (full.verdicts, "P9"),
        (full.verdicts, 1),
        (full.verdicts, 0),
        (scoped.verdicts, "P1"),
        (scoped.verdicts, "P9"),
    ):
        with pytest.raises(KeyError) as raised:
            verdicts[key]  # type: ignore[index]  # a wrong key on purpose
        assert raised.value.args == (key,)


def test_verdict_counts_of_a_plain_mapping() -> None:
    """verdict_counts over an ordinary mapping of verdicts counts its values."""
    verdicts = {"P1": Verdict.GRANTED, "P2": Verdict.EXPIRED, "P3": Verdict.GRANTED}
    assert verdict_counts(verdicts) == Counter({Verdict.GRANTED: 2, Verdict.EXPIRED: 1})


def test_a_later_record_kept_whole_replaces_a_compact_one() -> None:
    """A compactly kept record is replaced by a later one that must be kept whole (an expiry in another zone)."""
    odd_zone = timezone(timedelta(hours=3))
    later = rec("r2", "P1", recorded_at=T0 + timedelta(hours=1), expires_at=(NOW + timedelta(days=3)).astimezone(odd_zone))
    gathered = gather([rec("r1", "P1"), later])
    assert gathered.people["P1"].deciding == later
    assert build_plan(gathered, [], NOW, RULES).verdicts["P1"] is Verdict.GRANTED


def test_a_more_restrictive_tie_kept_whole_replaces_a_compact_one() -> None:
    """At the same instant a withdrawal beats a grant, also when the withdrawal must be kept whole."""
    odd_zone = timezone(timedelta(hours=-3))
    withdrawal = rec("r2", "P1", Decision.WITHDRAWN, expires_at=(NOW + timedelta(days=3)).astimezone(odd_zone))
    gathered = gather([rec("r1", "P1"), withdrawal])
    assert gathered.people["P1"].deciding == withdrawal
    assert build_plan(gathered, [], NOW, RULES).verdicts["P1"] is Verdict.WITHDRAWN


@pytest.mark.parametrize("lower_first", [True, False])
def test_a_full_tie_of_uninformed_grants_goes_to_the_lower_record_id(lower_first: bool) -> None:
    """Two grants alike in every ranked way (both uninformed, same instant): the lower record id, in either order."""
    low, high = rec("r1", "P1", informed=False), rec("r2", "P1", informed=None)
    items = [low, high] if lower_first else [high, low]
    assert gather(items).people["P1"].deciding == low


@pytest.mark.parametrize("closed_first", [True, False])
def test_a_closed_case_outranks_an_expiry_at_the_same_instant(closed_first: bool) -> None:
    """Closed case before expiry in the tie order: a closed grant beats an open grant that expires, either order."""
    closed = rec("r1", "P1", case_status=CaseStatus.CLOSED)
    expiring = rec("r2", "P1", expires_at=NOW + timedelta(days=5))
    items = [closed, expiring] if closed_first else [expiring, closed]
    assert gather(items).people["P1"].deciding == closed


def _colliding_keys() -> tuple[str, str]:
    """Two different ids whose 32-bit short hashes are equal (found by search; str hashes vary per process)."""
    seen: dict[int, str] = {}
    n = 0
    while True:
        key = f"P{n}"
        short = hash(key) & 0xFFFFFFFF
        if short in seen:
            return seen[short], key
        seen[short] = key
        n += 1


def test_keys_whose_short_hashes_collide_stay_two_keys() -> None:
    """The key table compares the bytes too: two ids with the same short hash get two numbers and come back apart."""
    first, second = _colliding_keys()
    table = KeyTable()
    assert table.add(first) == (0, True)
    assert table.add(second) == (1, True)
    assert (table.index(first), table.index(second)) == (0, 1)
    assert (table.key(0), table.key(1)) == (first, second)
    assert table.add(second) == (1, False)


def test_a_key_number_never_given_out_is_an_index_error_naming_it() -> None:
    """key(n) for n outside 0..len-1 raises IndexError(n)."""
    table = KeyTable()
    table.add("P1")
    table.add("P2")
    for number in (2, 3, -1):
        with pytest.raises(IndexError) as raised:
            table.key(number)
        assert raised.value.args == (number,)


@pytest.mark.parametrize("lower_first", [True, False])
def test_a_full_tie_of_closed_grants_goes_to_the_lower_record_id(lower_first: bool) -> None:
    """Two grants on closed cases at the same instant: the lower record id decides, in either order."""
    low = rec("r1", "P1", case_status=CaseStatus.CLOSED)
    high = rec("r2", "P1", case_status=CaseStatus.CLOSED)
    items = [low, high] if lower_first else [high, low]
    assert gather(items).people["P1"].deciding == low


def test_updated_at_outside_datetime_utc_comes_back_identical() -> None:
    """updated_at in another zone, with a fold, or of a datetime subclass is kept as it came, like the other timestamps."""

    class Stamp(datetime):
        pass

    odd_zone = timezone(timedelta(hours=-7))
    moments = [
        (T0 + timedelta(hours=1)).astimezone(odd_zone),
        (T0 + timedelta(hours=1)).replace(fold=1),
        Stamp(2024, 1, 1, 10, 0, tzinfo=UTC),
        T0 + timedelta(hours=1),
    ]
    records = [dataclasses.replace(rec(f"r{n}", f"P{n}"), updated_at=moment) for n, moment in enumerate(moments)]
    gathered = gather(records)
    for record in records:
        assert record.person_id is not None
        deciding = gathered.people[record.person_id].deciding
        assert deciding is not None
        assert deciding.updated_at is not None
        assert record.updated_at is not None
        assert (type(deciding.updated_at), deciding.updated_at.tzinfo, deciding.updated_at.fold) == (
            type(record.updated_at),
            record.updated_at.tzinfo,
            record.updated_at.fold,
        )


def test_a_record_id_after_a_whole_kept_record_does_not_overwrite_another_persons() -> None:
    """A person whose record was kept whole, then replaced by a compact one, gets fresh room for its id."""
    odd_zone = timezone(timedelta(hours=4))
    gathered = gather(
        [
            rec("ab", "P1"),
            rec("x", "P2", recorded_at=T0.astimezone(odd_zone)),
            rec("c", "P2", recorded_at=T0 + timedelta(hours=1)),
        ]
    )
    deciding = {person: evidence.deciding.record_id for person, evidence in gathered.people.items() if evidence.deciding}
    assert deciding == {"P1": "ab", "P2": "c"}
