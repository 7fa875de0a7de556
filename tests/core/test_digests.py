"""Per-person digests: the people named by a diff are exactly those whose rows differ."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from flagsync.core.digests import DIGEST_MASK, PersonDigests
from flagsync.core.keytable import KeyTable

Rows = list[tuple[str, int]]


def digests_of(rows: Rows) -> PersonDigests:
    """Digests as the sources make them: each row's hash is Python's hash of a tuple of texts.

    The row's values are texts, as in the sources: a tuple of small ints hashes almost linearly in
    them (CPython's tuple hash adds each item's hash before rotating and multiplying), so rows 0 and
    5 could sum to the same digest as rows 2 and 3, which texts' randomised hashes never do.
    """
    built = PersonDigests()
    for person, row in rows:
        built.add(person, hash(("row", f"value {row}")))
    return built


def model_changed(before: Rows, after: Rows) -> frozenset[str]:
    """The people whose multiset of rows differs between the two reads."""
    people = {p for p, _ in before} | {p for p, _ in after}
    old, new = Counter(before), Counter(after)
    return frozenset(
        p for p in people if {r: n for r, n in old.items() if r[0] == p} != {r: n for r, n in new.items() if r[0] == p}
    )


rows = st.lists(st.tuples(st.sampled_from([f"P{n}" for n in range(12)]), st.integers(0, 5)), max_size=40)


@given(before=rows, after=rows)
def test_the_diff_names_exactly_the_people_whose_rows_differ(before: Rows, after: Rows) -> None:
    """Whatever the two reads hold, in any order, the diff equals the model's people with different row multisets."""
    assert digests_of(after).changed_since(digests_of(before)) == model_changed(before, after)


@given(before=rows, edits=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 5)), max_size=5), more=rows)
def test_edits_and_appends_take_the_aligned_path_and_agree_with_the_model(
    before: Rows, edits: list[tuple[int, int]], more: Rows
) -> None:
    """Rows edited in place and rows appended (people keep their first-seen order) give the model's answer."""
    after = list(before)
    for at, value in edits:
        if at < len(after):
            after[at] = (after[at][0], value)
    after += more
    new, old = digests_of(after), digests_of(before)
    assert new.people.extends(old.people)
    assert new.changed_since(old) == model_changed(before, after)


def test_row_order_does_not_matter() -> None:
    """The same rows in another order give the same digests: nobody changed."""
    rows_a = [("P1", 1), ("P2", 2), ("P1", 3)]
    rows_b = [("P2", 2), ("P1", 3), ("P1", 1)]
    assert digests_of(rows_b).changed_since(digests_of(rows_a)) == frozenset()


def test_a_person_whose_rows_all_went_is_named() -> None:
    """A person present before and absent now is in the diff (their flag must go)."""
    assert digests_of([("P1", 1)]).changed_since(digests_of([("P1", 1), ("P2", 1)])) == frozenset({"P2"})


def test_digests_wrap_at_64_bits_and_cost_8_bytes_a_person() -> None:
    """Sums stay unsigned 64-bit; the digest array holds 8 bytes a person beside the key table."""
    built = PersonDigests()
    built.add("P1", DIGEST_MASK)
    built.add("P1", 2)
    assert built.digests[0] == 1
    for n in range(1000):
        built.add(f"P{n:07d}", n)
    assert built.nbytes() - built.people.nbytes() == 8 * len(built)


def test_keytable_extends() -> None:
    """A table extends another exactly when it starts with the same keys in the same order."""
    small, large, other = KeyTable(), KeyTable(), KeyTable()
    for key in ("a", "b"):
        small.add(key)
    for key in ("a", "b", "c"):
        large.add(key)
    for key in ("b", "a", "c"):
        other.add(key)
    assert large.extends(small) and large.extends(large) and not small.extends(large)
    assert not other.extends(small)
    assert KeyTable().extends(KeyTable()) and large.extends(KeyTable())
