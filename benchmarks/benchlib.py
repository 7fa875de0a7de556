"""Shared helpers for the benchmarks: the mock as a subprocess, consent databases, configs, CLI runs and figures."""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FLAGSYNC = str(BIN / "flagsync")
FLAGSYNC_MOCK = str(BIN / "flagsync-mock")

CLIENT_ID = "bench"
CLIENT_SECRET = "bench-secret"  # noqa: S105 - the mock's public benchmark credential
TEAM = "PIAS"
INVOLVEMENT_TYPE = "PIAS_WORKING_WITH_FAMILY"
CREATE_PATH = "/api/v1/people/{}/involvements"

#: Personal data a realistic consent table holds beside the contract columns (flagsync must never read it).
EXTRA_COLUMNS = ("child_name", "parent_name", "address", "postcode", "date_of_birth", "school", "worker", "notes")

CONTROL_TIMEOUT = 30.0


# ----------------------------------------------------------------------------------------------
# Figures


@dataclass(frozen=True)
class Figure:
    """One measured figure, with its target (if any) and whether the target was met."""

    name: str
    value: float | int | str
    unit: str = ""
    target: str = ""
    ok: bool | None = None

    def line(self) -> str:
        value = f"{self.value:.3f}" if isinstance(self.value, float) else str(self.value)
        verdict = "" if self.ok is None else ("  [met]" if self.ok else "  [MISSED]")
        target = f"  (target {self.target})" if self.target else ""
        return f"{self.name}: {value} {self.unit}".rstrip() + target + verdict


@dataclass
class Figures:
    """Collects figures and prints each one as it is measured."""

    items: list[Figure] = field(default_factory=list)

    def add(self, name: str, value: float | int | str, unit: str = "", target: str = "", ok: bool | None = None) -> Figure:
        figure = Figure(name, value, unit, target, ok)
        self.items.append(figure)
        print(figure.line(), flush=True)
        return figure


def summary_table(figures: Sequence[Figure]) -> str:
    """The figures as a fixed-width table (plain text)."""
    rows = [("figure", "value", "target", "verdict")]
    for f in figures:
        value = f"{f.value:.3f}" if isinstance(f.value, float) else str(f.value)
        rows.append((f.name, f"{value} {f.unit}".strip(), f.target, "" if f.ok is None else ("met" if f.ok else "MISSED")))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def least_cpu(work: Callable[[], int], runs: int = 3) -> tuple[float, int]:
    """The least CPU time (this process) of `runs` calls of `work`, and what it returned.

    CPU time rather than wall time: the machine is shared, and a busy neighbour stretches wall time.
    """
    best, result = float("inf"), 0
    for _ in range(runs):
        gc.collect()
        started = time.process_time()
        result = work()
        best = min(best, time.process_time() - started)
    return best, result


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine_lines() -> list[str]:
    """The date, and what this machine is: CPU count and model, Python version, OS (printed with every scaling figure)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: nproc {os.cpu_count()}, {model}, Python {platform.python_version()}, {platform.system()} {platform.release()}",
    ]


def main_for(run: Any, description: str) -> None:
    """Run one benchmark module on its own: parse --quick, print its figures and the summary table."""
    import argparse  # noqa: PLC0415 - only the stand-alone entry point needs it

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster variant")
    args = parser.parse_args()
    figures = Figures()
    run(figures, quick=args.quick)
    print("\n" + summary_table(figures.items))


# ----------------------------------------------------------------------------------------------
# The mock of One, as a separate process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MockServer:
    """`flagsync-mock --any-person` in its own process, with helpers for its control plane."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argument list, our own executable
            [FLAGSYNC_MOCK, "--port", str(self.port), "--any-person", "--client", f"{CLIENT_ID}:{CLIENT_SECRET}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.http.get(f"{self.url}/_mock/faults", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("flagsync-mock did not start")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __enter__(self) -> MockServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self._proc)
        self.http.close()
        self._log.close()

    # ---- control plane

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, self.url + path, json=body, timeout=CONTROL_TIMEOUT)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        self._call("POST", "/_mock/reset")

    def set_faults(self, config: Mapping[str, Any]) -> None:
        self._call("POST", "/_mock/faults", config)

    def fault_state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_mock/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/_mock/faults")

    def involvements(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_mock/involvements")["items"])

    def active_flags(self) -> dict[str, int]:
        """Person id → number of our active involvements."""
        counts: dict[str, int] = {}
        for item in self.involvements():
            if item["serviceTeam"] == TEAM and item["status"] == "active":
                counts[item["personId"]] = counts.get(item["personId"], 0) + 1
        return counts

    def add_flag(self, person_id: str) -> None:
        self._call("POST", "/_mock/involvements", {"personId": person_id, "serviceTeam": TEAM})

    def last_seq(self) -> int:
        items = self._call("GET", "/_mock/requests?limit=1")["items"]
        return int(items[-1]["seq"]) if items else 0

    def journal(self, since: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/_mock/requests?since={since}")["items"])


def journal_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Journal records counted by 'METHOD path-template status'."""
    counts: dict[str, int] = {}
    for record in records:
        path = str(record["path"])
        if path.startswith("/api/v1/people/"):
            path = "/api/v1/people/{id}/involvements"
        elif path.startswith("/api/v1/involvements/"):
            path = "/api/v1/involvements/{id}"
        key = f"{record['method']} {path} {record['status']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the process (group), then SIGKILL it if it has not left within `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# ----------------------------------------------------------------------------------------------
# Consent databases


def person_id(n: int) -> str:
    return f"P{n:07d}"


def stamp(moment: datetime | None = None) -> str:
    """An ISO timestamp in the one text format every row uses (updated_at is compared as text)."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


BASE_TIME = stamp(datetime(2025, 6, 1, 9, 30, tzinfo=UTC))
_ROWS_BASE = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


def contract_rows(count: int, *, distinct: bool) -> list[dict[str, object]]:
    """In-memory contract rows as text (as a SQLite driver returns them), one per person, 10% granted; timestamps repeated
    or distinct per row (the parsing benchmarks' rows; no flagsync import, so any checkout can parse them)."""
    out: list[dict[str, object]] = []
    for n in range(count):
        granted = n % 10 == 0
        moment = _ROWS_BASE - timedelta(seconds=n) if distinct else _ROWS_BASE
        out.append(
            {
                "record_id": f"CR-{n:08d}",
                "person_id": person_id(n),
                "decision": "granted" if granted else "refused",
                "informed": "yes" if granted else "no",
                "consented_by": "parent" if granted else None,
                "recorded_at": moment.isoformat(),
                "expires_at": "2030-12-31",
                "case_status": "open",
                "consent_version": "v2",
                "updated_at": (moment + timedelta(microseconds=n)).isoformat(timespec="microseconds"),
            }
        )
    return out


def create_consent_db(path: Path, people: int, granted: Iterable[int] | None = None, *, records: int | None = None) -> None:
    """A consent table of `records` rows (default one per person) over `people` people, with personal-data columns.

    People in `granted` (default: all) hold an informed, open, granted consent; the others a refusal.
    Extra rows beyond one per person are older refusals, so they change no decision.
    """
    wanted = set(range(people)) if granted is None else set(granted)
    total = people if records is None else records
    contract = (
        "record_id TEXT PRIMARY KEY, person_id TEXT, decision TEXT, informed TEXT, consented_by TEXT, recorded_at TEXT, "
        "expires_at TEXT, case_status TEXT, consent_version TEXT, updated_at TEXT"
    )
    extras = ", ".join(f"{name} TEXT" for name in EXTRA_COLUMNS)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"CREATE TABLE consent_records ({contract}, {extras})")
        db.execute("CREATE INDEX consent_records_updated_at ON consent_records (updated_at)")
        db.execute("CREATE INDEX consent_records_person_id ON consent_records (person_id)")
        db.executemany(
            f"INSERT INTO consent_records VALUES ({', '.join('?' * (10 + len(EXTRA_COLUMNS)))})",  # noqa: S608 - placeholders only
            (_row(n, people, wanted) for n in range(total)),
        )
        db.commit()


CSV_HEADER = (
    "record_id",
    "person_id",
    "decision",
    "informed",
    "consented_by",
    "recorded_at",
    "expires_at",
    "case_status",
    "consent_version",
    "updated_at",
    *EXTRA_COLUMNS,
)


def create_consent_csv(path: Path, people: int, granted: Iterable[int] | None = None, *, records: int | None = None) -> None:
    """The same rows as `create_consent_db`, as a CSV export (header row, personal-data columns included)."""
    wanted = set(range(people)) if granted is None else set(granted)
    total = people if records is None else records
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows(["" if value is None else value for value in _row(n, people, wanted)] for n in range(total))


def _row(n: int, people: int, wanted: set[int]) -> tuple[str | None, ...]:
    who = n % people
    latest = n < people
    granted = latest and who in wanted
    return (
        f"CR-{n:08d}",
        person_id(who),
        "granted" if granted else "refused",
        "yes" if granted else "no",
        "parent" if granted else None,
        "2025-06-01T09:30:00+00:00" if latest else "2024-03-01T09:30:00+00:00",
        "2030-12-31",
        "open",
        "v2",
        BASE_TIME,
        f"Child {n} Surname",
        f"Parent {n} Surname",
        f"{n} Lilac Row, Somewhere",
        "AB1 2CD",
        "2014-03-09",
        "Somewhere Primary School",
        "Worker Name",
        "Speech and language therapy; family circumstances noted at length. " * 3,
    )


def record_decision(path: Path, who: int, decision: str, *, tag: str) -> datetime:
    """Insert a newer decision for person `who` (recorded and updated now); returns the moment written."""
    now = datetime.now(UTC)
    row = _decision_row(who, decision, tag, now)
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        db.execute(f"INSERT INTO consent_records VALUES ({', '.join('?' * len(row))})", row)  # noqa: S608 - placeholders only
        db.commit()
    return now


def _decision_row(who: int, decision: str, tag: str, now: datetime) -> tuple[str | None, ...]:
    granted = decision == "granted"
    return (
        f"CR-{tag}",
        person_id(who),
        decision,
        "yes" if granted else "no",
        "parent" if granted else None,
        now.isoformat(timespec="microseconds"),
        "2030-12-31",
        "open",
        "v2",
        stamp(now),
        *(["x"] * len(EXTRA_COLUMNS)),
    )


def record_decision_csv(path: Path, who: int, decision: str, *, tag: str) -> datetime:
    """Add a newer decision for person `who` to the CSV export the way an export job does: a new file renamed over the old."""
    now = datetime.now(UTC)
    row = ["" if value is None else value for value in _decision_row(who, decision, tag, now)]
    temporary = path.with_name(path.name + ".new")
    with path.open("rb") as old, temporary.open("wb") as new:
        while chunk := old.read(1 << 20):
            new.write(chunk)
    with temporary.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(row)
    os.replace(temporary, path)
    return now


# ----------------------------------------------------------------------------------------------
# PostgreSQL consent databases (a temporary database on 127.0.0.1:5432)

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


@contextlib.contextmanager
def temporary_pg_database(prefix: str = "flagsync_bench_") -> Iterator[str]:
    """A uniquely named, empty PostgreSQL database; yields its URL and drops it (connections and all) afterwards."""
    import uuid  # noqa: PLC0415 - only PostgreSQL benchmarks need it

    import psycopg  # noqa: PLC0415 - the postgres extra; only PostgreSQL benchmarks need it

    name = prefix + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_consent_pg(url: str, people: int, granted: Iterable[int] | None = None, *, records: int | None = None) -> None:
    """The rows of `create_consent_db` in PostgreSQL: record_id the primary key, `updated_at` a timestamptz, both indexes."""
    import psycopg  # noqa: PLC0415 - the postgres extra

    wanted = set(range(people)) if granted is None else set(granted)
    total = people if records is None else records
    contract = (
        "record_id text PRIMARY KEY, person_id text, decision text, informed text, consented_by text, recorded_at text, "
        "expires_at text, case_status text, consent_version text, updated_at timestamptz"
    )
    extras = ", ".join(f"{name} text" for name in EXTRA_COLUMNS)
    with psycopg.connect(url) as db:
        db.execute(f"CREATE TABLE consent_records ({contract}, {extras})")
        with db.cursor().copy("COPY consent_records FROM STDIN") as copy:
            for n in range(total):
                copy.write_row(_row(n, people, wanted))
        db.execute('CREATE INDEX consent_records_person_id_c ON consent_records (person_id COLLATE "C")')
        db.execute("CREATE INDEX consent_records_updated_at ON consent_records (updated_at)")
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("VACUUM ANALYZE consent_records")


def record_decision_pg(url: str, who: int, decision: str, *, tag: str) -> datetime:
    """Insert a newer decision for person `who` into the PostgreSQL consent table; returns the moment written."""
    import psycopg  # noqa: PLC0415 - the postgres extra

    now = datetime.now(UTC)
    row: list[object] = list(_decision_row(who, decision, tag, now))
    row[9] = now  # updated_at is a timestamptz there
    with psycopg.connect(url) as db:
        db.execute(f"INSERT INTO consent_records VALUES ({', '.join(['%s'] * len(row))})", row)  # noqa: S608 - placeholders only
    return now


# ----------------------------------------------------------------------------------------------
# A process's CPU time


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process (not its children) has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------
# flagsync configuration and runs


class Workspace:
    """A temporary directory with a consent database, a state database and a config TOML for one mock."""

    def __init__(
        self,
        mock_url: str,
        *,
        people: int = 0,
        granted: Iterable[int] | None = None,
        records: int | None = None,
        kind: str = "sql",
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="flagsync-bench-")
        self.path = Path(self._dir.name)
        self.mock_url = mock_url
        self.kind = kind
        self.consent_db = self.path / "consent.db"
        self.consent_csv = self.path / "consent.csv"
        self.state_db = self.path / "state.db"
        self.secrets = self.path / "secrets"
        self.secrets.mkdir()
        self.pg_url: str | None = None
        self._pg: contextlib.ExitStack | None = None
        if people and kind == "sql":
            create_consent_db(self.consent_db, people, granted, records=records)
        elif people and kind == "csv":
            create_consent_csv(self.consent_csv, people, granted, records=records)
        elif kind == "pg":
            self._pg = contextlib.ExitStack()
            try:
                self.pg_url = self._pg.enter_context(temporary_pg_database())
                if people:
                    create_consent_pg(self.pg_url, people, granted, records=records)
            except BaseException:
                self._pg.close()
                self._dir.cleanup()
                raise
        self.config = self.write_config()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._pg is not None:
                self._pg.close()
        finally:
            self._dir.cleanup()

    def record_decision(self, who: int, decision: str, *, tag: str) -> datetime:
        """A newer decision for person `who` in this workspace's consent source (SQLite, PostgreSQL or CSV)."""
        if self.kind == "csv":
            return record_decision_csv(self.consent_csv, who, decision, tag=tag)
        if self.kind == "pg":
            assert self.pg_url is not None
            return record_decision_pg(self.pg_url, who, decision, tag=tag)
        return record_decision(self.consent_db, who, decision, tag=tag)

    def write_config(
        self,
        one: Mapping[str, object] | None = None,
        sync: Mapping[str, object] | None = None,
        daemon: Mapping[str, object] | None = None,
    ) -> Path:
        source: dict[str, object]
        if self.kind == "csv":
            source = {"kind": "csv", "path": str(self.consent_csv)}
        elif self.kind == "pg":
            source = {"kind": "sql", "url": str(self.pg_url), "table": "consent_records"}
        else:
            source = {"kind": "sql", "url": f"sqlite:///{self.consent_db}", "table": "consent_records"}
        sections: dict[str, dict[str, object]] = {
            "source": source,
            "one": {"base_url": self.mock_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **(one or {})},
            "sync": dict(sync or {}),
            "state": {"url": f"sqlite:///{self.state_db}"},
            "audit": {"hmac_key": "benchmark-key-not-a-secret-000000"},
            "log": {"format": "json", "level": "WARNING"},
            "daemon": {"http_port": 0, "http_host": "127.0.0.1", **(daemon or {})},
        }
        text = ""
        for name, values in sections.items():
            text += f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()) + "\n"
        path = self.path / "flagsync.toml"
        path.write_text(text, encoding="utf-8")
        self.config = path
        return path

    def fresh_state(self) -> None:
        """Forget flagsync's state (run history, pending removals, watermark): remove the state database files."""
        for path in self.path.glob(self.state_db.name + "*"):
            path.unlink()

    def env(self) -> dict[str, str]:
        """The environment for a flagsync subprocess: no FLAGSYNC_* from outside, an empty secrets directory."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("FLAGSYNC_")}
        env["FLAGSYNC_SECRETS_DIR"] = str(self.secrets)
        return env

    def cli(self, *args: str, timeout: float = 600.0) -> CliRun:
        return run_cli([FLAGSYNC, *args, "--config", str(self.config)], cwd=self.path, env=self.env(), timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a long-running flagsync command (the daemon); stop it with stop_process()."""
        return subprocess.Popen(  # noqa: S603 - fixed argument list, our own executable
            [FLAGSYNC, *args, "--config", str(self.config)],
            cwd=self.path,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


@dataclass(frozen=True)
class CliRun:
    """A finished command: exit code, wall time, peak resident memory, and its output."""

    code: int
    wall_s: float
    max_rss_mb: float
    stdout: str
    stderr: str
    cpu_s: float = 0.0  # user + system CPU time of the process

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> CliRun:
    """Run a command to completion, measuring its wall time and peak RSS (os.wait4 on that one child)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=out, stderr=err, start_new_session=True)  # noqa: S603 - our own executable
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return CliRun(proc.returncode, wall, usage.ru_maxrss / 1024.0, out.read().decode(), err.read().decode(), cpu)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def mock_and_workspace(**workspace: Any) -> Iterator[tuple[MockServer, Workspace]]:
    """A fresh mock process and a workspace pointed at it; both cleaned up on leaving."""
    with MockServer() as mock, Workspace(mock.url, **workspace) as ws:
        yield mock, ws
