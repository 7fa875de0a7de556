"""The e2e privacy canary check itself: it must catch a leak through each door it guards, or it proves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mocks.one.control import MockControl
from mocks.one.server import RunningMock
from tests.e2e.conftest import E2E, HTTP_TIMEOUT, record

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path: Path, mock_server: RunningMock) -> Iterator[E2E]:
    """A world whose canary check the test calls by hand (no automatic check at the end)."""
    with MockControl(mock_server.url) as control:
        control.reset()
        world = E2E(tmp_path, mock_server, control)
        world.add_records(record("PCANARY01"))
        yield world


def test_a_clean_world_passes(world: E2E) -> None:
    """Nothing sent, logged or stored: the check passes."""
    world.assert_private()


def test_personal_data_in_a_request_is_caught(world: E2E) -> None:
    """A canary name in any request to One (here a query string) fails the check."""
    name = next(c for c in world.canaries if c.startswith("Zebedee"))
    world.http.get(f"{world.mock.url}/api/v1/involvements", params={"q": name}, timeout=HTTP_TIMEOUT)
    with pytest.raises(AssertionError, match="sent to One"):
        world.assert_private()


def test_a_person_id_outside_the_url_path_is_caught(world: E2E) -> None:
    """A person id in a request body (not the create URL) fails the check."""
    world.http.post(f"{world.mock.url}/api/v1/involvements", json={"personId": "PCANARY01"}, timeout=HTTP_TIMEOUT)
    with pytest.raises(AssertionError, match="outside the URL path"):
        world.assert_private()


def test_a_record_id_in_the_logs_is_caught(world: E2E) -> None:
    """A consent record id in a log line fails the check."""
    world.log_text.append('{"event": "oops", "record": "RCANARY-0001"}\n')
    with pytest.raises(AssertionError, match="in the logs"):
        world.assert_private()


def test_a_person_id_in_the_state_store_is_caught(world: E2E) -> None:
    """A raw person id anywhere in the state store's files fails the check."""
    (world.state_dir / "flagsync-state.db").write_bytes(b"SQLite format 3\x00...PCANARY01...")
    with pytest.raises(AssertionError, match="state store"):
        world.assert_private()
