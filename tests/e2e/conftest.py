"""End-to-end harness: the real `flagsync` command line as a subprocess against the real mock server, with a privacy canary.

Every scenario gets an `E2E` world: a consent database whose extra columns hold canary personal data, a
state database, a configuration file, and the mock server (reset). When the scenario ends, the canary
check runs: no personal data or consent record id in anything sent to One, none in the logs, and none
(nor any person id) in the state store's files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests

from flagsync.demo_data import CONSENT_TABLE_COLUMNS, consent_table_sql, insert_sql
from mocks.one.control import MockControl
from mocks.one.server import RunningMock, start_in_thread

CLIENT_ID = "flagsync-e2e"
CLIENT_SECRET = "e2e-secret-CANARYSECRET-7f3a"
HMAC_KEY = "e2e-pseudonym-key-CANARYHMAC-91c2"
TEAM = "PIAS"
INVOLVEMENT_TYPE = "PIAS_WORKING_WITH_FAMILY"
HTTP_TIMEOUT = (3.05, 10)
RUN_TIMEOUT_SECONDS = 90

#: The consent table: the contract's columns, then personal data flagsync must never read (one layout everywhere).
CONSENT_COLUMNS = CONSENT_TABLE_COLUMNS
INSERT_RECORD = insert_sql()

#: A One create URL path, the only place (with the person-scoped listing) a person id may travel.
PERSON_PATH = re.compile(r"/api/v1/people/[A-Za-z0-9][A-Za-z0-9_-]{0,63}/involvements")


def flagsync_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m flagsync.cli`."""
    script = shutil.which("flagsync", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "flagsync.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def ago(**delta: float) -> str:
    """An ISO timestamp that long before now (UTC, with offset)."""
    return iso(datetime.now(UTC) - timedelta(**delta))


def record(
    person_id: str,
    decision: str = "granted",
    *,
    informed: str | None = "yes",
    consented_by: str | None = "parent",
    recorded_at: str | None = None,
    expires_at: str | None = None,
    case_status: str = "open",
) -> dict[str, Any]:
    """One consent record's contract fields (record id, update time and personal data are added on insert)."""
    return {
        "person_id": person_id,
        "decision": decision,
        "informed": informed if decision == "granted" else None,
        "consented_by": consented_by if decision == "granted" else None,
        "recorded_at": recorded_at or ago(days=30),
        "expires_at": expires_at,
        "case_status": case_status,
        "consent_version": None,
    }


@dataclass
class Run:
    """One finished command: its exit code and captured output."""

    args: Sequence[str]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def describe(self) -> str:
        return f"flagsync {' '.join(self.args)} -> {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class E2E:
    """One scenario's world: files in tmp_path, the mock server, and everything flagsync printed."""

    root: Path
    mock: RunningMock
    control: MockControl
    consent_db: Path = field(init=False)
    state_dir: Path = field(init=False)
    config: Path = field(init=False)
    person_ids: set[str] = field(default_factory=set)
    record_ids: set[str] = field(default_factory=set)
    canaries: set[str] = field(default_factory=set)
    runs: list[Run] = field(default_factory=list)
    #: Output that is log output (stderr of commands; stdout of the daemon): no raw ids allowed.
    log_text: list[str] = field(default_factory=list)
    #: Set (then `write_config()`) to keep the state store elsewhere, e.g. in PostgreSQL.
    state_url_override: str | None = None
    _next_record: int = 0

    def __post_init__(self) -> None:
        self.consent_db = self.root / "consent.db"
        self.state_dir = self.root / "state"
        self.state_dir.mkdir()
        (self.root / "secrets").mkdir()
        self.config = self.root / "flagsync.toml"
        with sqlite3.connect(self.consent_db) as db:
            db.execute(consent_table_sql())
        db.close()
        self.write_config()

    # ---- configuration

    @property
    def state_url(self) -> str:
        return self.state_url_override or f"sqlite:///{self.state_dir / 'flagsync-state.db'}"

    def write_config(
        self,
        *,
        table: str = "consent_records",
        client_secret: str = CLIENT_SECRET,
        page_size: int = 3,
        http_port: int = 0,
        change_poll_interval: float = 30,
        read_timeout: float = 5,
    ) -> None:
        self.config.write_text(
            f"""# Written by the e2e test harness.
[source]
kind = "sql"
url = "sqlite:///{self.consent_db}"
table = "{table}"

[one]
base_url = "{self.mock.url}"
client_id = "{CLIENT_ID}"
client_secret = "{client_secret}"
page_size = {page_size}
max_concurrency = 2
connect_timeout = 2
read_timeout = {read_timeout}

[sync]
retry_attempts = 4
retry_max_delay = 2
change_poll_interval = {change_poll_interval}
full_reconcile_interval = 3600

[state]
url = "{self.state_url}"

[audit]
hmac_key = "{HMAC_KEY}"

[log]
format = "json"
level = "INFO"

[daemon]
http_host = "127.0.0.1"
http_port = {http_port}
""",
            encoding="utf-8",
        )

    # ---- the consent database

    def add_records(self, *records: dict[str, Any]) -> list[str]:
        """Insert consent records with fresh record ids, a later updated_at, and canary personal data; return the ids."""
        ids = []
        with sqlite3.connect(self.consent_db) as db:
            for fields in records:
                self._next_record += 1
                n = self._next_record
                record_id = f"RCANARY-{n:04d}"
                personal = {
                    "child_name": f"Zebedee Canaryfamily{n:03d}",
                    "address": f"{n} Canarywharf Close, Nowheretown",
                    "date_of_birth": f"2013-0{1 + n % 9}-{10 + n % 18}",
                    "notes": f"CANARYNOTE{n:03d} speech and language referral",
                }
                row = {
                    **fields,
                    "record_id": record_id,
                    "updated_at": iso(datetime.now(UTC) + timedelta(microseconds=n)),
                    **personal,
                }
                db.execute(INSERT_RECORD, [row.get(column) for column in CONSENT_COLUMNS])
                ids.append(record_id)
                self.record_ids.add(record_id)
                self.canaries.update(personal.values())
                if fields.get("person_id"):
                    self.person_ids.add(str(fields["person_id"]))
        db.close()
        return ids

    def sql(self, statement: str, *params: object) -> None:
        with sqlite3.connect(self.consent_db) as db:
            db.execute(statement, params)
        db.close()

    # ---- the mock of One

    def seed_people(self, *person_ids: str, state: str = "active", successor: str | None = None) -> None:
        people = []
        for person_id in person_ids:
            person: dict[str, str] = {"personId": person_id, "state": state}
            if successor is not None:
                person["successorPersonId"] = successor
            people.append(person)
            self.person_ids.add(person_id)
        self.control.seed_people(people)

    def add_by_hand(self, person_id: str, team: str = TEAM) -> str:
        """An involvement made directly in One (ours "by hand", or another team's); returns its id."""
        self.person_ids.add(person_id)
        return str(self.control.add_involvement(person_id, team)["id"])

    def remove_by_hand(self, involvement_id: str) -> None:
        self.control.remove_involvement(involvement_id)

    def faults(self, config: dict[str, Any]) -> None:
        self.control.set_faults(config)

    def fault_state(self) -> dict[str, Any]:
        """The active fault rules, each with how often it fired."""
        return self.control.faults()

    def clear_faults(self) -> None:
        self.control.clear_faults()

    def involvements(self) -> list[dict[str, Any]]:
        return self.control.involvements()

    def ours(self) -> list[dict[str, Any]]:
        """Our active flags in One now."""
        return self.control.active(TEAM, INVOLVEMENT_TYPE)

    def flagged(self) -> set[str]:
        """The people holding our flag in One, checking on the way that nobody holds two."""
        counts = Counter(i["personId"] for i in self.ours())
        duplicates = {person for person, n in counts.items() if n > 1}
        assert not duplicates, f"duplicate active involvements for {sorted(duplicates)}"
        return set(counts)

    def journal(self) -> list[dict[str, Any]]:
        return self.control.since(0)

    def writes(self) -> list[dict[str, Any]]:
        """Creates and removals that reached One's API."""
        return [e for e in self.journal() if e["method"] in ("POST", "DELETE") and e["path"].startswith("/api/")]

    @property
    def http(self) -> requests.Session:
        """A session for calling the mock's One API directly (tests of the canary check and the console)."""
        return self.control.session

    # ---- running flagsync

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
        env["FLAGSYNC_SECRETS_DIR"] = str(self.root / "secrets")
        env["COLUMNS"] = "200"
        return env

    def flagsync(self, *args: str, expect: int | None = 0, config: bool = True) -> Run:
        """Run `flagsync ARGS --config <ours>` to completion; assert its exit code unless expect is None."""
        argv = [*args, "--config", str(self.config)] if config else list(args)
        done = subprocess.run(
            [*flagsync_command(), *argv],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        run = Run(argv, done.returncode, done.stdout, done.stderr)
        self.record_run(run, logs_on_stdout=False)
        if expect is not None:
            assert run.code == expect, run.describe()
        return run

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `flagsync ARGS --config <ours>` in the background; collect it with `finish`."""
        return subprocess.Popen(
            [*flagsync_command(), *args, "--config", str(self.config)],
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(
        self, process: subprocess.Popen[str], *, logs_on_stdout: bool = False, timeout: float = RUN_TIMEOUT_SECONDS
    ) -> Run:
        """Wait for a started command and record its output like any other run."""
        stdout, stderr = process.communicate(timeout=timeout)
        args = [str(a) for a in process.args[1:]] if isinstance(process.args, list) else []
        run = Run(args, process.returncode, stdout, stderr)
        self.record_run(run, logs_on_stdout=logs_on_stdout)
        return run

    def record_run(self, run: Run, *, logs_on_stdout: bool) -> None:
        self.runs.append(run)
        self.log_text.append(run.stderr)
        if logs_on_stdout:
            self.log_text.append(run.stdout)

    def sync_until_converged(self, *args: str, runs: int = 3) -> list[Run]:
        """Run `sync` until it exits 0, at most `runs` times; fail if it never does."""
        done: list[Run] = []
        for _ in range(runs):
            done.append(self.flagsync("sync", *args, expect=None))
            if done[-1].code == 0:
                return done
        raise AssertionError("sync did not converge:\n" + "\n".join(r.describe() for r in done))

    # ---- the canary check

    def assert_private(self) -> None:
        """No personal data, record id or secret left through any door; person ids only where the contract allows."""
        secrets = {CLIENT_SECRET, HMAC_KEY}
        never = self.canaries | self.record_ids | secrets
        for entry in self.journal():
            # Raw and percent-decoded, so that a value sent URL-encoded ("Zebedee+Canary...") is caught too.
            decoded = {k: unquote_plus(v) if isinstance(v, str) else v for k, v in entry.items()}
            whole = json.dumps(entry) + json.dumps(decoded)
            leaked = sorted(s for s in never if s in whole)
            assert not leaked, f"sent to One: {leaked} in {entry['method']} {entry['path']}"
            rest = json.dumps({k: v for k, v in entry.items() if k != "path"}) + json.dumps(
                {k: v for k, v in decoded.items() if k != "path"}
            )
            named = sorted(p for p in self.person_ids if p in rest)
            assert not named, f"person id outside the URL path: {named} in {entry['method']} {entry['path']}"
            if any(p in decoded["path"] for p in self.person_ids):
                assert entry["method"] in ("POST", "GET") and PERSON_PATH.fullmatch(entry["path"]), entry["path"]
        for text in self.log_text:
            for line in text.splitlines():
                assert line.startswith(("{", "flagsync: ")), f"not a JSON log line: {line!r}"
                leaked = sorted(s for s in never | self.person_ids if s in line)
                assert not leaked, f"in the logs: {leaked} in {line!r}"
        for run in self.runs:
            leaked = sorted(s for s in self.canaries | secrets if s in run.stdout)
            assert not leaked, f"on the terminal: {leaked}\n{run.describe()}"
        for path in sorted(self.state_dir.iterdir()):
            data = path.read_bytes()
            leaked = sorted(s for s in never | self.person_ids if s.encode() in data)
            assert not leaked, f"in the state store file {path.name}: {leaked}"


@pytest.fixture(scope="session")
def mock_server() -> Iterator[RunningMock]:
    with start_in_thread(clients={CLIENT_ID: (CLIENT_SECRET, TEAM)}, seed=11) as running:
        yield running


@pytest.fixture
def e2e(tmp_path: Path, mock_server: RunningMock) -> Iterator[E2E]:
    """A fresh world for one scenario; the canary check runs when the scenario ends."""
    with MockControl(mock_server.url) as control:
        control.reset()
        world = E2E(tmp_path, mock_server, control)
        yield world
        world.assert_private()
