"""The FlagGateway contract, run against the in-memory fake and against HttpFlagGateway talking to the real mock server."""

from __future__ import annotations

import pytest

from flagsync.core.model import Flag
from flagsync.errors import PersonIssue, PersonUnavailable
from flagsync.ports import CreateOutcome, FlagGateway, PageProbe
from tests.contract.conftest import PAGE_SIZE, OneSide

Side = tuple[FlagGateway, OneSide]


def test_create_is_created_then_listed(side: Side) -> None:
    """A create for an active person is CREATED, and the flag is listed, for that person, at version 1."""
    gateway, one = side
    one.add_person("PCON01")
    one.add_person("PCON02")
    assert gateway.create_flag("PCON01", "key-create-1") is CreateOutcome.CREATED
    [flag] = one.flags()
    assert (flag.person_id, flag.version) == ("PCON01", 1)
    assert gateway.list_flags() == [flag]
    assert gateway.person_flags("PCON01") == [flag]
    assert gateway.person_flags("PCON02") == []


def test_create_again_with_a_new_key_is_already_present(side: Side) -> None:
    """A second create with another key is ALREADY_PRESENT and leaves exactly one flag."""
    gateway, one = side
    one.add_person("PCON01")
    gateway.create_flag("PCON01", "key-first")
    assert gateway.create_flag("PCON01", "key-second") is CreateOutcome.ALREADY_PRESENT
    assert len(one.flags()) == 1
    assert len(gateway.list_flags()) == 1


def test_replaying_a_key_gives_the_same_outcome_and_no_duplicate(side: Side) -> None:
    """Replaying a create's key answers as the first time did and never makes a second flag."""
    gateway, one = side
    one.add_person("PCON01")
    assert gateway.create_flag("PCON01", "key-replayed") is CreateOutcome.CREATED
    assert gateway.create_flag("PCON01", "key-replayed") is CreateOutcome.CREATED
    assert len(one.flags()) == 1


def test_replay_after_the_flag_was_removed_by_hand_creates_nothing(side: Side) -> None:
    """A replayed key is the original answer, not a new create: a flag removed by hand meanwhile stays removed."""
    gateway, one = side
    one.add_person("PCON01")
    gateway.create_flag("PCON01", "key-replayed")
    one.remove_by_hand(one.flags()[0].involvement_id)
    assert gateway.create_flag("PCON01", "key-replayed") is CreateOutcome.CREATED
    assert one.flags() == []
    assert gateway.list_flags() == []


@pytest.mark.parametrize(
    ("state", "issue"),
    [
        ("archived", PersonIssue.PERSON_ARCHIVED),
        ("restricted", PersonIssue.RECORD_RESTRICTED),
        ("merged", PersonIssue.PERSON_MERGED),
        ("unknown", PersonIssue.PERSON_NOT_FOUND),
    ],
)
def test_people_one_will_not_flag_are_unavailable(side: Side, state: str, issue: PersonIssue) -> None:
    """Create and person_flags for an archived, restricted, merged or unknown person raise PersonUnavailable with the issue."""
    gateway, one = side
    one.add_person("PCONGONE9", state)
    with pytest.raises(PersonUnavailable) as created:
        gateway.create_flag("PCONGONE9", "key-unavailable")
    assert created.value.issue is issue
    assert "PCONGONE9" not in str(created.value)
    with pytest.raises(PersonUnavailable) as read:
        gateway.person_flags("PCONGONE9")
    assert read.value.issue is issue
    assert one.flags() == []
    assert gateway.list_flags() == []


def test_listing_is_complete_across_pages_and_ignores_other_teams(side: Side) -> None:
    """list_flags returns every active flag of ours, in id order, across several pages, and no other team's involvement."""
    gateway, one = side
    people = [f"PCONL{n:02d}" for n in range(8)]
    for n, person_id in enumerate(people):
        one.add_person(person_id)
        if n % 2 == 0:
            one.add_other_team(person_id, "EHS")
        assert gateway.create_flag(person_id, f"key-list-{n}") is CreateOutcome.CREATED
    one.add_other_team("PCONOTHER", "YOS")
    removed = one.add_flag_by_hand("PCONREMOVED")
    one.remove_by_hand(removed.involvement_id)
    listed = gateway.list_flags()
    assert len(listed) == len(people) > 2 * PAGE_SIZE
    assert listed == one.flags() == sorted(listed)
    assert sorted(flag.person_id for flag in listed) == people


def test_person_flags_shows_only_that_persons_flag(side: Side) -> None:
    """person_flags lists the person's own flag and nothing of anyone else's."""
    gateway, one = side
    for person_id in ("PCON01", "PCON02"):
        one.add_person(person_id)
        gateway.create_flag(person_id, f"key-{person_id}")
    one.add_other_team("PCON01", "EHS")
    [mine] = gateway.person_flags("PCON01")
    assert mine.person_id == "PCON01"
    assert mine in one.flags()


def test_remove_then_remove_again(side: Side) -> None:
    """A removed flag is gone; removing it again (already gone) is done, not an error."""
    gateway, one = side
    one.add_person("PCON01")
    gateway.create_flag("PCON01", "key-remove")
    [flag] = gateway.list_flags()
    gateway.remove_flag(flag)
    assert one.flags() == []
    gateway.remove_flag(flag)
    assert gateway.list_flags() == []
    assert gateway.person_flags("PCON01") == []


def test_remove_with_a_stale_version_still_removes(side: Side) -> None:
    """A flag edited in One after it was listed (its version moved on) is removed all the same."""
    gateway, one = side
    one.add_person("PCON01")
    gateway.create_flag("PCON01", "key-stale")
    [listed] = gateway.list_flags()
    touched = one.touch_by_hand(listed.involvement_id)
    assert touched.version == listed.version + 1
    gateway.remove_flag(listed)
    assert one.flags() == []


def test_flag_removed_by_hand_is_not_listed_and_can_be_made_again(side: Side) -> None:
    """Drift: a flag removed by hand vanishes from the listing, and a new create for that person is CREATED."""
    gateway, one = side
    one.add_person("PCON01")
    made = one.add_flag_by_hand("PCON01")
    assert gateway.list_flags() == [made]
    one.remove_by_hand(made.involvement_id)
    assert gateway.list_flags() == []
    assert gateway.create_flag("PCON01", "key-again") is CreateOutcome.CREATED
    [again] = one.flags()
    assert again.involvement_id != made.involvement_id


def test_probe_lists_at_most_one(side: Side) -> None:
    """probe sees nothing with no flags; with two, one on its page of size 1 and more to follow."""
    gateway, one = side
    assert gateway.probe() == PageProbe(0, False)
    one.add_flag_by_hand("PCON01")
    assert gateway.probe() == PageProbe(1, False)
    one.add_flag_by_hand("PCON02")
    assert gateway.probe() == PageProbe(1, True)


def test_flags_are_values_the_service_can_compare(side: Side) -> None:
    """Listed flags are Flag values equal to what One holds (id, person, version)."""
    gateway, one = side
    one.add_person("PCON01")
    gateway.create_flag("PCON01", "key-values")
    assert all(isinstance(flag, Flag) for flag in gateway.list_flags())
    assert gateway.list_flags() == one.flags()


def test_replaying_a_key_answered_already_present_stays_already_present(side: Side) -> None:
    """A key first answered 409 duplicate replays as ALREADY_PRESENT, even after the flag was removed by hand meanwhile."""
    gateway, one = side
    one.add_person("PCON01")
    gateway.create_flag("PCON01", "key-first")
    assert gateway.create_flag("PCON01", "key-duplicate") is CreateOutcome.ALREADY_PRESENT
    one.remove_by_hand(one.flags()[0].involvement_id)
    assert gateway.create_flag("PCON01", "key-duplicate") is CreateOutcome.ALREADY_PRESENT
    assert one.flags() == []
