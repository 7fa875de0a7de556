"""Rotating One's client secret: the new secret file is picked up at the next start, and no pending removal is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mocks.one.control import MockControl
from mocks.one.server import start_in_thread
from tests.e2e.conftest import CLIENT_ID, CLIENT_SECRET, E2E, TEAM, ago, record

pytestmark = pytest.mark.e2e

NEW_SECRET = "e2e-rotated-secret-NEWCANARY-51d0"
REMOVE = "/api/v1/involvements/*"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[E2E]:
    """A world with a mock of its own (it is restarted with another secret), keeping One's data in a state file."""
    mock = start_in_thread(clients={CLIENT_ID: (CLIENT_SECRET, TEAM)}, state_file=tmp_path / "one-state.json")
    with MockControl(mock.url) as control:
        made = E2E(tmp_path, mock, control)
        try:
            yield made
            made.assert_private()
        finally:
            made.mock.stop()


def _restart_one_with(world: E2E, secret: str) -> None:
    """One's administrators rotate the client's secret: the same server (port, data) now accepts only `secret`."""
    port = int(world.mock.url.rsplit(":", 1)[1])
    world.mock.stop()
    world.mock = start_in_thread(port=port, clients={CLIENT_ID: (secret, TEAM)}, state_file=world.root / "one-state.json")


def test_a_rotated_secret_file_is_used_at_the_next_start_and_the_pending_removal_survives(world: E2E) -> None:
    """A removal pending at the rotation stays pending while the secret is wrong, and is done once the new secret file is read."""
    world.seed_people("P1", "P2")
    world.add_records(record("P1"), record("P2"))
    world.flagsync("sync")
    world.add_records(record("P2", "withdrawn", recorded_at=ago(days=1)))
    world.faults({"rules": [{"method": "DELETE", "path": REMOVE, "status": 500, "times": 10}]})
    world.flagsync("sync", expect=3)
    world.clear_faults()

    _restart_one_with(world, NEW_SECRET)
    refused = world.flagsync("sync", expect=1)  # still the old secret: One refuses the token, nothing is lost
    assert "P2" in world.flagged()
    assert [p["involvementId"] for p in world.flagsync("status", "--json").json()["pendingRemovals"]] != []
    assert NEW_SECRET not in refused.stderr and CLIENT_SECRET not in refused.stderr

    secret_file = world.root / "secrets" / "flagsync_one__client_secret"
    secret_file.write_text(NEW_SECRET + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    world.flagsync("sync")

    assert world.flagged() == {"P1"}
    assert world.flagsync("status", "--json").json()["pendingRemovals"] == []
    assert "audit trail intact" in world.flagsync("audit", "--verify").stdout
