"""Target 2: withdrawal -> flag gone from One in daemon mode, and the idle cost of watching for changes.

Latency (`flagsync daemon` subprocess, default settings unless told otherwise): the daemon converges
on the people first; then withdrawals (a newer 'withdrawn' record, recorded and updated now) are
written at seeded random moments, and the mock is polled every 0.2 s for each flag's disappearance.
Latency is from the write (the commit, or the rename of the new CSV export over the old) to the
first poll that no longer sees the flag, so it is up to 0.2 s pessimistic. Sources: SQLite,
PostgreSQL (a temporary database on 127.0.0.1:5432: `updated_at` a timestamptz, both indexes) and a
CSV export (each withdrawal writes a new file with one more row and renames it over the old one).

Idle cost: a consent source of 100,000 records (one per person, 10% granted), the daemon converged
and left alone; the CPU seconds the daemon process uses over a measured minute, as % of one core.
For PostgreSQL the CPU of the server backends serving that database is printed beside it.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import time
from pathlib import Path

import benchlib
import requests
from benchlib import Figures

POLL_SECONDS = 0.2
TARGET_P95 = 2.0
TARGET_IDLE_CORE = 0.05
KINDS = {"sqlite": "sql", "postgresql": "pg", "csv": "csv"}


def _wait_converged(mock: benchlib.MockServer, daemon: subprocess.Popen[bytes], flags: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(mock.active_flags()) < flags:
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the daemon did not converge")
        time.sleep(0.5)


def measure(
    kind: str, people: int, withdrawals: int, span: float, poll_interval: float | None, *, granted: int | None = None
) -> list[float]:
    """Latencies (s) of `withdrawals` withdrawals over `span` s; the daemon polls every `poll_interval` s (None: default)."""
    rng = random.Random(7)
    every = max(1, people // granted) if granted else 1
    chosen = rng.sample(range(0, people, every), withdrawals)
    offsets = sorted(rng.uniform(0, span) for _ in chosen)
    sync = {} if poll_interval is None else {"change_poll_interval": poll_interval}
    with benchlib.mock_and_workspace(people=people, granted=range(0, people, every), kind=KINDS[kind]) as (mock, ws):
        ws.write_config(sync=sync)
        daemon = ws.start("daemon")
        try:
            _wait_converged(mock, daemon, len(range(0, people, every)), 600)
            time.sleep(1.0)  # past the start-up reconcile's last write
            started = time.monotonic()
            withdrawn_at: dict[str, float] = {}
            latencies: dict[str, float] = {}
            pending = list(zip(offsets, chosen, strict=True))
            deadline = started + span + 3 * (poll_interval or 30.0) + 60
            while len(latencies) < withdrawals and time.monotonic() < deadline:
                now = time.monotonic()
                while pending and pending[0][0] <= now - started:
                    _, who = pending.pop(0)
                    ws.record_decision(who, "withdrawn", tag=f"w-{who}")
                    withdrawn_at[benchlib.person_id(who)] = time.monotonic()
                flags = mock.active_flags()
                seen = time.monotonic()
                for pid, at in withdrawn_at.items():
                    if pid not in latencies and pid not in flags:
                        latencies[pid] = seen - at
                time.sleep(POLL_SECONDS)
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        finally:
            benchlib.stop_process(daemon)
    missing = withdrawals - len(latencies)
    if missing:
        print(f"  {missing} flags were still in One at the deadline")
    return sorted(latencies.values()) + [float("inf")] * missing


def _postgres_backends_cpu(url: str) -> float:
    """CPU seconds used so far by the server backends connected to this database (readable in /proc on this machine)."""
    import psycopg  # noqa: PLC0415 - the postgres extra

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        pids = [row[0] for row in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    total = 0.0
    for pid in pids:
        try:
            total += benchlib.process_cpu_seconds(pid)
        except OSError:
            continue  # a backend that ended meanwhile
    return total


def idle_cpu(kind: str, records: int, seconds: float, poll_interval: float | None) -> tuple[float, float | None, int]:
    """(daemon CPU s, PostgreSQL backends' CPU s or None, change polls) over `seconds` of idling at `records` records."""
    port = benchlib.free_port()
    sync = {} if poll_interval is None else {"change_poll_interval": poll_interval}
    granted = range(0, records, 10)
    with benchlib.mock_and_workspace(people=records, granted=granted, kind=KINDS[kind]) as (mock, ws):
        ws.write_config(sync=sync, daemon={"http_port": port})
        daemon = ws.start("daemon")
        try:
            _wait_converged(mock, daemon, len(granted), 600)
            time.sleep(10.0)  # the first polls after the start-up reconcile (a CSV source builds its index)
            before = benchlib.process_cpu_seconds(daemon.pid)
            server_before = _postgres_backends_cpu(ws.pg_url) if ws.pg_url else None
            time.sleep(seconds)
            used = benchlib.process_cpu_seconds(daemon.pid) - before
            server = _postgres_backends_cpu(ws.pg_url) - server_before if ws.pg_url and server_before is not None else None
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            scraped = time.time()
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        finally:
            benchlib.stop_process(daemon)
    last_poll = next(
        (
            float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith("flagsync_last_change_poll_timestamp_seconds")
        ),
        0.0,
    )
    age = scraped - last_poll
    print(f"  {kind}: the last change poll ended {age:.1f} s before the end of the measured interval")
    polls = int(seconds / (poll_interval or _default_poll_interval()))
    return used, server, polls


def _default_poll_interval() -> float:
    from flagsync.settings import SyncSettings  # noqa: PLC0415 - the code under test (maybe a checkout of another commit)

    return float(SyncSettings().change_poll_interval)


def report(figures: Figures, label: str, latencies: list[float], target: float) -> None:
    print(f"  {label}: latencies {', '.join(f'{x:.2f}' for x in latencies)} s")
    p95 = benchlib.percentile(latencies, 95)
    figures.add(f"{label}.n", len(latencies), "withdrawals")
    figures.add(f"{label}.p50", benchlib.percentile(latencies, 50), "s")
    figures.add(f"{label}.p95", p95, "s", target=f"<= {target:g} s", ok=p95 <= target)
    figures.add(f"{label}.max", max(latencies), "s")


def run(
    figures: Figures,
    *,
    quick: bool = False,
    kinds: tuple[str, ...] = tuple(KINDS),
    poll_interval: float | None = None,
    idle_seconds: float | None = None,
    latency: bool = True,
    idle: bool = True,
    people: int = 200,
) -> None:
    interval = poll_interval or _default_poll_interval()
    label = "default" if poll_interval is None else f"poll_{poll_interval:g}s"
    print(f"  change_poll_interval: {interval:g} s ({label})")
    for kind in kinds:
        if latency:
            count = 8 if quick else 30
            span = max(20.0 if quick else 60.0, 5 * interval)
            granted = None if people <= 200 else people // 10
            name = f"withdrawal.{kind}.{label}" if people == 200 else f"withdrawal.{kind}.{people}.{label}"
            report(figures, name, measure(kind, people, count, span, poll_interval, granted=granted), TARGET_P95)
        if idle:
            records = 20_000 if quick else 100_000
            seconds = idle_seconds or (20.0 if quick else 60.0)
            used, server, polls = idle_cpu(kind, records, seconds, poll_interval)
            share = used / seconds
            figures.add(
                f"idle.{kind}.{records}.{label}.daemon_cpu",
                100 * share,
                f"% of one core ({used:.2f} CPU s in {seconds:g} s, about {polls} polls)",
                target=f"<= {100 * TARGET_IDLE_CORE:g}%",
                ok=share <= TARGET_IDLE_CORE,
            )
            if polls:
                figures.add(f"idle.{kind}.{records}.{label}.cpu_per_poll", 1000 * used / polls, "ms")
            if server is not None:
                figures.add(
                    f"idle.{kind}.{records}.{label}.postgres_cpu", 100 * server / seconds, "% of one core (server backends)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster variant")
    parser.add_argument("--kind", action="append", choices=list(KINDS), help="only these sources (default: all three)")
    parser.add_argument("--poll-interval", type=float, help="sync.change_poll_interval to configure (default: the default)")
    parser.add_argument("--idle-seconds", type=float, help="how long the idle CPU is measured (default 60, --quick 20)")
    parser.add_argument("--no-latency", action="store_true", help="only the idle CPU")
    parser.add_argument("--no-idle", action="store_true", help="only the latencies")
    parser.add_argument("--people", type=int, default=200, help="records (one a person; above 200, 10%% granted) for latencies")
    args = parser.parse_args()
    figures = Figures()
    for line in benchlib.machine_lines():
        print(line)
    print(f"  flagsync from {Path(__import__('flagsync').__file__).parent}")
    run(
        figures,
        quick=args.quick,
        kinds=tuple(args.kind or KINDS),
        poll_interval=args.poll_interval,
        idle_seconds=args.idle_seconds,
        latency=not args.no_latency,
        idle=not args.no_idle,
        people=args.people,
    )
    print("\n" + benchlib.summary_table(figures.items))


if __name__ == "__main__":
    main()
