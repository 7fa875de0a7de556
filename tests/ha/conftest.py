"""Two real `flagsync daemon` processes on one PostgreSQL state store, a shared SQLite consent database and the mock.

Each replica has its own mock client (same team) and its own `application_name` on its PostgreSQL
connections, so a test can see in `pg_locks` which replica holds the run lock, and in each replica's
own log which runs and writes were its.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flagsync.adapters.run_lock import ADVISORY_LOCK_KEY, LEADER_LOCK_KEY
from mocks.one.control import MockControl
from mocks.one.server import RunningMock, start_in_thread
from tests.e2e.conftest import E2E, HMAC_KEY, TEAM, Run, flagsync_command, free_port
from tests.postgres import SERVER, unavailable

CLIENT_SECRET = "ha-secret-CANARYSECRET-51d0"
REPLICAS = ("a", "b")


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll `condition` every 20 ms; return the seconds it took, or fail after `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - started


@dataclass
class Replica:
    """One daemon process: its name, config, HTTP port and (once finished) its log events."""

    name: str
    config: Path
    port: int
    process: subprocess.Popen[str] | None = None
    run: Run | None = None
    killed_at: datetime | None = None

    @property
    def client_id(self) -> str:
        return f"flagsync-ha-{self.name}"

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events the process wrote (call after it finished)."""
        assert self.run is not None, f"replica {self.name} has not finished"
        return [json.loads(line) for line in self.run.stdout.splitlines() if line.startswith("{")]

    def health(self) -> int:
        return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).status_code


@dataclass
class Cluster:
    """Two replicas, the world they share, and the state database."""

    world: E2E
    state_db: str
    admin: sa.Engine
    replicas: dict[str, Replica] = field(default_factory=dict)

    def state_url(self, replica: str) -> str:
        return f"{SERVER}/{self.state_db}?application_name=flagsync-{replica}"

    def configure(self, name: str, *, change_poll_interval: float = 0.5, full_reconcile_interval: float = 3600) -> Replica:
        config = self.world.root / f"replica-{name}.toml"
        replica = Replica(name, config, free_port())
        config.write_text(
            f"""# Written by the HA test harness.
[source]
kind = "sql"
url = "sqlite:///{self.world.consent_db}"
table = "consent_records"

[one]
base_url = "{self.world.mock.url}"
client_id = "{replica.client_id}"
client_secret = "{CLIENT_SECRET}"
page_size = 5
max_concurrency = 1
connect_timeout = 2
read_timeout = 5

[sync]
retry_attempts = 3
retry_max_delay = 1
change_poll_interval = {change_poll_interval}
full_reconcile_interval = {full_reconcile_interval}

[state]
url = "{self.state_url(name)}"

[audit]
hmac_key = "{HMAC_KEY}"

[log]
format = "json"
level = "INFO"

[daemon]
http_host = "127.0.0.1"
http_port = {replica.port}
""",
            encoding="utf-8",
        )
        self.replicas[name] = replica
        return replica

    def start(self, name: str) -> Replica:
        replica = self.replicas[name]
        replica.process = subprocess.Popen(
            [*flagsync_command(), "daemon", "--config", str(replica.config)],
            cwd=self.world.root,
            env=self.world.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: _answers(replica), 20, f"replica {name}'s /healthz")
        return replica

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown sequence, no clean release of anything."""
        replica = self.replicas[name]
        assert replica.process is not None
        replica.process.send_signal(signal.SIGKILL)
        replica.killed_at = datetime.now(UTC)
        self.finish(name)

    def stop(self, name: str) -> None:
        replica = self.replicas[name]
        assert replica.process is not None
        replica.process.send_signal(signal.SIGTERM)
        self.finish(name)

    def finish(self, name: str) -> None:
        replica = self.replicas[name]
        assert replica.process is not None
        replica.run = self.world.finish(replica.process, logs_on_stdout=True, timeout=20)

    def lock_holder(self, key: int = ADVISORY_LOCK_KEY) -> str | None:
        """Which replica holds the run lock (or the lock with `key`) now, by its connection's application_name, or None."""
        query = sa.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = :db "
            "AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) AND l.objsubid = 1"
        )
        # A bigint advisory key shows in pg_locks as its high and low 32 bits (objsubid 1).
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        params = {"db": self.state_db, "high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}
        with self.admin.connect() as conn:
            holders = [row[0] for row in conn.execute(query, params)]
        assert len(holders) <= 1, f"two holders of one advisory lock: {holders}"
        return holders[0].removeprefix("flagsync-") if holders else None

    def leader(self) -> str | None:
        """Which replica leads now (holds the leader lock), or None."""
        return self.lock_holder(LEADER_LOCK_KEY)


def _answers(replica: Replica) -> bool:
    assert replica.process is not None and replica.process.poll() is None, f"replica {replica.name} exited"
    try:
        replica.health()
    except requests.ConnectionError:
        return False
    return True


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh PostgreSQL state database, the mock with one client per replica, and the shared consent database."""
    name = f"flagsync_ha_{datetime.now(UTC).strftime('%H%M%S%f')}"
    admin = sa.create_engine(f"{SERVER}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        admin.dispose()
        unavailable()
    clients = {f"flagsync-ha-{r}": (CLIENT_SECRET, TEAM) for r in REPLICAS}
    mock: RunningMock
    try:
        with start_in_thread(clients=clients, seed=3) as mock, MockControl(mock.url) as control:
            cluster = Cluster(E2E(tmp_path, mock, control), name, admin)
            try:
                yield cluster
            finally:
                for replica in cluster.replicas.values():
                    if replica.process is not None and replica.process.poll() is None:
                        replica.process.kill()
                        cluster.finish(replica.name)
            cluster.world.assert_private()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
