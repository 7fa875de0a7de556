"""Tests that the in-memory One fake keeps One's semantics: people states, duplicates, replays, versions and faults."""

from __future__ import annotations

import threading

import pytest

from flagsync.adapters.memory_gateway import InMemoryFlagGateway, PersonState
from flagsync.core.model import Flag
from flagsync.errors import ContractViolation, PersonIssue, PersonUnavailable, RetriableRemoteError
from flagsync.ports import CreateOutcome, FlagGateway, PageProbe

# The fixtures are split into `one` (One's side, seeded by hand) and `gateway` (the FlagGateway under
# test) so that a contract suite can run the same tests against the HTTP gateway and the mock server.


@pytest.fixture
def one() -> InMemoryFlagGateway:
    world = InMemoryFlagGateway()
    world.add_person("P1")
    world.add_person("P2")
    return world


@pytest.fixture
def gateway(one: InMemoryFlagGateway) -> FlagGateway:
    return one


def test_fake_satisfies_the_protocol() -> None:
    """InMemoryFlagGateway is a FlagGateway (checked by mypy through this assignment)."""
    gateway: FlagGateway = InMemoryFlagGateway()
    assert gateway.list_flags() == []


def test_create_then_list(one: InMemoryFlagGateway, gateway: FlagGateway) -> None:
    """A created flag is listed, for that person, at version 1."""
    assert gateway.create_flag("P1", "k1") is CreateOutcome.CREATED
    [flag] = gateway.list_flags()
    assert (flag.person_id, flag.version) == ("P1", 1)
    assert gateway.person_flags("P1") == [flag]
    assert gateway.person_flags("P2") == []
    assert one.flags() == [flag]


def test_second_create_with_a_new_key_is_already_present(gateway: FlagGateway) -> None:
    """A person who already has the flag gets ALREADY_PRESENT and still one flag."""
    gateway.create_flag("P1", "k1")
    assert gateway.create_flag("P1", "k2") is CreateOutcome.ALREADY_PRESENT
    assert len(gateway.list_flags()) == 1


def test_replayed_key_returns_the_original_outcome(one: InMemoryFlagGateway, gateway: FlagGateway) -> None:
    """Replaying a key returns the first answer, even after the flag was removed meanwhile."""
    assert gateway.create_flag("P1", "k1") is CreateOutcome.CREATED
    assert gateway.create_flag("P1", "k1") is CreateOutcome.CREATED
    one.remove_by_hand(one.flags()[0].involvement_id)
    assert gateway.create_flag("P1", "k1") is CreateOutcome.CREATED
    assert gateway.list_flags() == []


def test_key_reused_for_another_person_is_a_contract_violation(gateway: FlagGateway) -> None:
    """The same key for a different request is refused like One's 422 IDEMPOTENCY_KEY_REUSED."""
    gateway.create_flag("P1", "k1")
    with pytest.raises(ContractViolation) as info:
        gateway.create_flag("P2", "k1")
    assert info.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert "P2" not in str(info.value)


@pytest.mark.parametrize(
    ("state", "issue"),
    [
        ("archived", PersonIssue.PERSON_ARCHIVED),
        ("restricted", PersonIssue.RECORD_RESTRICTED),
        ("merged", PersonIssue.PERSON_MERGED),
    ],
)
def test_inactive_people_are_unavailable(
    one: InMemoryFlagGateway, gateway: FlagGateway, state: PersonState, issue: PersonIssue
) -> None:
    """Creating or reading a flag for an archived, restricted or merged person raises PersonUnavailable."""
    one.add_person("P9", state)
    with pytest.raises(PersonUnavailable) as info:
        gateway.create_flag("P9", "k9")
    assert info.value.issue is issue
    with pytest.raises(PersonUnavailable):
        gateway.person_flags("P9")
    assert gateway.list_flags() == []


def test_unknown_person_is_not_found(gateway: FlagGateway) -> None:
    """A person One does not know is PERSON_NOT_FOUND, and the message does not name them."""
    with pytest.raises(PersonUnavailable) as info:
        gateway.create_flag("P404", "k1")
    assert info.value.issue is PersonIssue.PERSON_NOT_FOUND
    assert "P404" not in str(info.value)


def test_any_person_makes_every_well_formed_id_active() -> None:
    """With any_person, an unseeded well-formed id is an active person."""
    gateway = InMemoryFlagGateway(any_person=True)
    assert gateway.create_flag("P-ANY-1", "k1") is CreateOutcome.CREATED


@pytest.mark.parametrize("person_id", ["", "a/b", "-x", "x" * 65])
def test_malformed_person_id_is_refused(gateway: FlagGateway, person_id: str) -> None:
    """A malformed person id is refused as a contract violation, as the real gateway does."""
    with pytest.raises(ContractViolation):
        gateway.create_flag(person_id, "k1")
    with pytest.raises(ContractViolation):
        gateway.person_flags(person_id)


@pytest.mark.parametrize("key", ["", "k" * 65])
def test_bad_idempotency_key_is_refused(gateway: FlagGateway, key: str) -> None:
    """An empty or over-long Idempotency-Key is refused."""
    with pytest.raises(ContractViolation):
        gateway.create_flag("P1", key)


def test_remove_then_remove_again_is_done(gateway: FlagGateway) -> None:
    """Removing a flag empties the list; removing it again (already gone) is done, not an error."""
    gateway.create_flag("P1", "k1")
    [flag] = gateway.list_flags()
    gateway.remove_flag(flag)
    gateway.remove_flag(flag)
    assert gateway.list_flags() == []


def test_remove_with_a_stale_version_still_removes(one: InMemoryFlagGateway, gateway: FlagGateway) -> None:
    """A flag edited in One since it was listed is re-read and removed all the same."""
    gateway.create_flag("P1", "k1")
    [listed] = gateway.list_flags()
    assert one.touch_by_hand(listed.involvement_id).version == 2
    gateway.remove_flag(listed)
    assert gateway.list_flags() == []


def test_drift_by_hand_shows_in_the_listing(one: InMemoryFlagGateway, gateway: FlagGateway) -> None:
    """Flags added or removed directly in One appear in, or vanish from, the next listing."""
    made = one.add_flag_by_hand("P2")
    assert gateway.list_flags() == [made]
    one.remove_by_hand(made.involvement_id)
    assert gateway.list_flags() == []


def test_listing_is_in_id_order_and_probe_counts_one_page(one: InMemoryFlagGateway, gateway: FlagGateway) -> None:
    """Flags are listed in id order; probe reports at most one item (a page of size 1) and whether more follow."""
    assert gateway.probe() == PageProbe(0, False)
    first, second = one.add_flag_by_hand("P1"), one.add_flag_by_hand("P2")
    assert gateway.list_flags() == sorted([second, first])
    assert gateway.probe() == PageProbe(1, True)


def test_injected_faults_are_raised_then_cleared(one: InMemoryFlagGateway) -> None:
    """fail_next(n, error) raises the error on the next n calls, then calls succeed again."""
    outage = RetriableRemoteError("One answered HTTP 503", status=503, code="MAINTENANCE")
    one.fail_next(2, outage)
    for _ in range(2):
        with pytest.raises(RetriableRemoteError):
            one.create_flag("P1", "k1")
    assert one.flags() == []
    assert one.create_flag("P1", "k1") is CreateOutcome.CREATED


def test_injected_faults_can_target_one_operation(one: InMemoryFlagGateway) -> None:
    """A fault for remove_flag leaves listing and creating alone."""
    one.fail_next(1, RetriableRemoteError("reset", code="CONNECTION_ERROR"), operation="remove_flag")
    one.create_flag("P1", "k1")
    [flag] = one.list_flags()
    with pytest.raises(RetriableRemoteError):
        one.remove_flag(flag)
    assert one.flags() == [flag]
    one.remove_flag(flag)
    assert one.flags() == []


def test_fault_after_commit_applies_the_write_then_fails(one: InMemoryFlagGateway) -> None:
    """An after-commit fault (504) stores the flag but raises; the retry with the same key is a replay."""
    one.fail_next(1, RetriableRemoteError("One answered HTTP 504", status=504, code="GATEWAY_TIMEOUT"), after_commit=True)
    with pytest.raises(RetriableRemoteError):
        one.create_flag("P1", "k1")
    assert len(one.flags()) == 1
    assert one.create_flag("P1", "k1") is CreateOutcome.CREATED
    assert len(one.flags()) == 1


def test_calls_are_counted_per_operation(one: InMemoryFlagGateway) -> None:
    """The fake counts calls per method, so a steady-state run can be shown to make no writes."""
    one.list_flags()
    one.create_flag("P1", "k1")
    assert one.calls == {"list_flags": 1, "create_flag": 1}


def test_concurrent_creates_for_one_person_make_one_flag(one: InMemoryFlagGateway) -> None:
    """Many threads creating the same person's flag with different keys leave exactly one flag."""
    outcomes: list[CreateOutcome] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        outcome = one.create_flag("P1", f"k{n}")
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(CreateOutcome.CREATED) == 1
    assert len(one.flags()) == 1
    assert isinstance(one.flags()[0], Flag)
