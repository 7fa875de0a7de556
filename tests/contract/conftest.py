"""Fixtures for the gateway contract suite: the in-memory fake, and the real HTTP gateway against the real mock server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest
from pydantic import SecretStr

from flagsync.adapters.memory_gateway import InMemoryFlagGateway, PersonState
from flagsync.adapters.one.endpoint import OneEndpoint
from flagsync.adapters.one.gateway import HttpFlagGateway
from flagsync.core.model import INVOLVEMENT_TYPE, SERVICE_TEAM, Flag
from flagsync.ports import FlagGateway
from mocks.one.control import MockControl
from mocks.one.server import RunningMock, start_in_thread

CLIENT_ID, CLIENT_SECRET = "flagsync-contract", "contract-secret"
TIMEOUT = (3.05, 10)

#: Small on purpose, so that a handful of flags spans several listing pages.
PAGE_SIZE = 3


class OneSide(Protocol):
    """One's side of the world, seeded "by hand": the same operations for the fake and the mock server."""

    def add_person(self, person_id: str, state: PersonState | str = "active") -> None: ...

    def add_flag_by_hand(self, person_id: str) -> Flag: ...

    def add_other_team(self, person_id: str, team: str) -> None: ...

    def remove_by_hand(self, involvement_id: str) -> None: ...

    def touch_by_hand(self, involvement_id: str) -> Flag: ...

    def flags(self) -> list[Flag]: ...


class FakeSide:
    """The fake's own test helpers (it stores only our flags, so other teams' involvements do not exist in it)."""

    def __init__(self, fake: InMemoryFlagGateway) -> None:
        self._fake = fake

    def add_person(self, person_id: str, state: PersonState | str = "active") -> None:
        if state != "unknown":
            self._fake.add_person(person_id, state)  # type: ignore[arg-type]  # the four One states, checked by the tests

    def add_flag_by_hand(self, person_id: str) -> Flag:
        return self._fake.add_flag_by_hand(person_id)

    def add_other_team(self, person_id: str, team: str) -> None:
        """Nothing to do: the fake models our team's flags only, which is what list_flags must return."""

    def remove_by_hand(self, involvement_id: str) -> None:
        self._fake.remove_by_hand(involvement_id)

    def touch_by_hand(self, involvement_id: str) -> Flag:
        return self._fake.touch_by_hand(involvement_id)

    def flags(self) -> list[Flag]:
        return self._fake.flags()


class MockSide:
    """The mock server's /_mock/ control plane, seen as One's staff editing records by hand."""

    def __init__(self, mock: RunningMock, control: MockControl) -> None:
        self._mock = mock
        self._control = control

    def add_person(self, person_id: str, state: PersonState | str = "active") -> None:
        if state == "unknown":
            return
        person: dict[str, str] = {"personId": person_id, "state": state}
        if state == "merged":
            person["successorPersonId"] = f"{person_id}S"
        self._control.seed_people([person])

    def add_flag_by_hand(self, person_id: str) -> Flag:
        made = self._control.add_involvement(person_id, SERVICE_TEAM)
        return Flag(made["id"], made["personId"], made["version"])

    def add_other_team(self, person_id: str, team: str) -> None:
        self._control.add_involvement(person_id, team)

    def remove_by_hand(self, involvement_id: str) -> None:
        self._control.remove_involvement(involvement_id, missing_ok=True)

    def touch_by_hand(self, involvement_id: str) -> Flag:
        # The control plane has no "edit by hand"; an edit in One only moves the version on, so do that directly.
        core = self._mock.core
        with core._lock:
            stored = core._find(involvement_id)
            stored.version += 1
            return Flag(involvement_id, stored.person_id, stored.version)

    def flags(self) -> list[Flag]:
        return sorted(
            Flag(item["id"], item["personId"], item["version"]) for item in self._control.active(SERVICE_TEAM, INVOLVEMENT_TYPE)
        )


@pytest.fixture(scope="module")
def mock_server() -> Iterator[RunningMock]:
    with start_in_thread(clients={CLIENT_ID: (CLIENT_SECRET, SERVICE_TEAM)}, seed=3) as running:
        yield running


@pytest.fixture(params=["fake", "mock"])
def side(request: pytest.FixtureRequest) -> Iterator[tuple[FlagGateway, OneSide]]:
    """(gateway under test, One's side): the in-memory fake, or HttpFlagGateway talking to a freshly reset mock server."""
    if request.param == "fake":
        fake = InMemoryFlagGateway()
        yield fake, FakeSide(fake)
        return
    mock: RunningMock = request.getfixturevalue("mock_server")
    with MockControl(mock.url) as control:
        control.reset()
        gateway = HttpFlagGateway(
            OneEndpoint(
                base_url=mock.url,
                token_url=mock.url + "/connect/token",
                client_id=CLIENT_ID,
                client_secret=SecretStr(CLIENT_SECRET),
            ),
            page_size=PAGE_SIZE,
            retry_attempts=2,
            retry_max_delay=0.1,
            sleep=lambda _: None,
        )
        try:
            yield gateway, MockSide(mock, control)
        finally:
            gateway.close()
