"""Targets 5 and the scaling table: `plan`, no-change `sync` and `sync --person` at 10k, 100k and 1M consent records.

Each size gets its own mock and workspace: a SQLite consent table of N rows (one per person, 10% granted,
personal-data columns beside the contract ones), a converging `sync` (N/10 creates), then the measured
commands as CLI subprocesses: `plan --json`, a no-change `sync --json` (zero writes checked in the mock
journal) and `sync --person` three times, each after a changed decision for that person (one write each).
Wall time, CPU time (user + system) and peak RSS are of the `flagsync` subprocess alone (os.wait4
rusage), start-up included; CPU time is the steadier figure on a shared machine.

Then one no-change sync in-process (build_app + SyncService.sync, the same code the CLI runs) with the
progress callback's timestamps splits its time into reading the consent records (read and fold), listing
One, and the rest (planning, the state store, the report). A full run lists One in a thread while it
reads (service/listing.py), so "list One" is only the wait for the listing after the read has ended.

`--quick` measures 10k and 30k only. The figures end in a Markdown table with the date and the machine.
"""

from __future__ import annotations

import statistics
import sys
import time

import benchlib
from benchlib import Figures

from flagsync.bootstrap import build_app
from flagsync.core.model import RunTrigger
from flagsync.logs import configure_logging
from flagsync.service import Phase
from flagsync.settings import load_settings

RSS_LIMIT_MB = 200.0
NOCHANGE_LIMIT_S = 10.0
PERSON_RUNS = 3


def _split(ws: benchlib.Workspace) -> dict[str, float]:
    """One no-change sync in-process, its time split by the progress callback into read, list and the rest."""
    marks: dict[str, float] = {}

    def progress(phase: Phase, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if phase is Phase.READ_SOURCE and total is not None:
            marks["read_done"] = now
        elif phase is Phase.LIST_ONE and total is None:
            marks["list_start"] = now
        elif phase is Phase.LIST_ONE:
            marks["list_done"] = now

    app = build_app(load_settings(config_file=ws.config, env=ws.env()))
    configure_logging(format="json", level="WARNING", pseudonymizer=app.pseudonymizer, stream=sys.stderr)
    try:
        started = time.perf_counter()
        report = app.service.sync(trigger=RunTrigger.OPERATOR, progress=progress)
        ended = time.perf_counter()
    finally:
        app.close()
    if report.outcome.value != "converged" or report.counts()["adds"] + report.counts()["removes"]:
        raise RuntimeError(f"the in-process no-change sync was not a converged no-op: {report.outcome}, {report.counts()}")
    read = marks["read_done"] - started
    listing = marks["list_done"] - marks["list_start"]
    return {"total": ended - started, "read": read, "list": listing, "rest": ended - started - read - listing}


def _person_runs(ws: benchlib.Workspace, who: int) -> tuple[list[float], list[float], list[float]]:
    """`sync --person` PERSON_RUNS times, each after a changed decision (one write each): wall, CPU, peak RSS."""
    pid = benchlib.person_id(who)
    walls: list[float] = []
    cpu: list[float] = []
    rss: list[float] = []
    for n in range(PERSON_RUNS):
        benchlib.record_decision(ws.consent_db, who, "withdrawn" if n % 2 == 0 else "granted", tag=f"scale-{n}")
        result = ws.cli("sync", "--person", pid, "--json")
        counts = result.json()["counts"]
        if result.code != 0 or counts["adds"] + counts["removes"] != 1:
            raise RuntimeError(f"person sync {n} did not write once (exit {result.code}, {counts})")
        walls.append(result.wall_s)
        cpu.append(result.cpu_s)
        rss.append(result.max_rss_mb)
    return walls, cpu, rss


def measure(figures: Figures, records: int) -> dict[str, float]:
    """All figures for one table size; returns them for the table."""
    granted = range(0, records, 10)
    tag = f"scale_{records // 1000}k" if records < 1_000_000 else f"scale_{records // 1_000_000}m"
    row: dict[str, float] = {"records": records}
    with benchlib.mock_and_workspace(people=records, granted=granted) as (mock, ws):
        first = ws.cli("sync", "--json", timeout=3600)
        if first.code != 0:
            raise RuntimeError(f"the converging run failed (exit {first.code}): {first.stderr[-500:]}")
        print(f"  {records:,} records: converging run {first.json()['counts']['adds']} adds in {first.wall_s:.1f} s")
        plan = ws.cli("plan", "--json", timeout=900)
        since = mock.last_seq()
        again = ws.cli("sync", "--json", timeout=900)
        writes = sum(
            n
            for key, n in benchlib.journal_counts(mock.journal(since)).items()
            if not key.startswith(("GET ", "POST /connect/token"))
        )
        who = 4240  # granted (a multiple of 10) and flagged after the converging run
        pid = benchlib.person_id(who)
        person_walls, person_cpu, person_rss = _person_runs(ws, who)
        # Put the person back as converged (granted, with a flag) before the in-process no-change run.
        if PERSON_RUNS % 2 == 1:
            benchlib.record_decision(ws.consent_db, who, "granted", tag="scale-back")
            if ws.cli("sync", "--person", pid).code != 0:
                raise RuntimeError("could not restore the person's flag")
        split = _split(ws)
        flags = len(mock.active_flags())
    ok_plan = plan.code in (0, 2)
    figures.add(f"{tag}.plan_wall", plan.wall_s, "s", ok=ok_plan)
    figures.add(f"{tag}.plan_cpu", plan.cpu_s, "s")
    figures.add(f"{tag}.plan_rss", plan.max_rss_mb, "MB", target=f"< {RSS_LIMIT_MB:.0f} MB", ok=plan.max_rss_mb < RSS_LIMIT_MB)
    nochange_ok = again.code == 0 and (records < 1_000_000 or again.wall_s <= NOCHANGE_LIMIT_S)
    target = f"<= {NOCHANGE_LIMIT_S:.0f} s at 1M" if records >= 1_000_000 else ""
    figures.add(f"{tag}.nochange_sync_wall", again.wall_s, "s", target=target, ok=nochange_ok)
    figures.add(f"{tag}.nochange_sync_cpu", again.cpu_s, "s")
    figures.add(
        f"{tag}.nochange_sync_rss", again.max_rss_mb, "MB", target=f"< {RSS_LIMIT_MB:.0f} MB", ok=again.max_rss_mb < RSS_LIMIT_MB
    )
    figures.add(f"{tag}.nochange_sync_writes", writes, "requests (token excluded)", target="0", ok=writes == 0)
    figures.add(f"{tag}.person_sync_wall_median", statistics.median(person_walls), "s", target="< 2 s")
    figures.add(f"{tag}.person_sync_cpu_median", statistics.median(person_cpu), "s")
    figures.add(f"{tag}.person_sync_rss_max", max(person_rss), "MB")
    figures.add(f"{tag}.inprocess_nochange_total", split["total"], "s")
    figures.add(f"{tag}.inprocess_read_records", split["read"], "s")
    figures.add(f"{tag}.inprocess_list_one", split["list"], "s")
    figures.add(f"{tag}.inprocess_rest", split["rest"], "s")
    figures.add(f"{tag}.flags_in_one", flags, "", target=str(len(granted)), ok=flags == len(granted))
    row.update(
        plan_s=plan.wall_s,
        plan_cpu=plan.cpu_s,
        plan_mb=plan.max_rss_mb,
        sync_s=again.wall_s,
        sync_cpu=again.cpu_s,
        sync_mb=again.max_rss_mb,
        person_s=statistics.median(person_walls),
        person_cpu=statistics.median(person_cpu),
        person_mb=max(person_rss),
        read_s=split["read"],
        list_s=split["list"],
        rest_s=split["rest"],
    )
    return row


def table(rows: list[dict[str, float]]) -> str:
    """The scaling table in Markdown."""
    lines = [
        "| records | `plan` | no-change `sync` | `sync --person` (median of 3) | no-change split: read / list One / rest |",
        "|---:|---|---|---|---|",
    ]
    for r in rows:
        plan = f"{r['plan_s']:.1f} s (CPU {r['plan_cpu']:.1f} s), {r['plan_mb']:.0f} MB"
        sync = f"{r['sync_s']:.1f} s (CPU {r['sync_cpu']:.1f} s), {r['sync_mb']:.0f} MB"
        person = f"{r['person_s']:.2f} s (CPU {r['person_cpu']:.2f} s), {r['person_mb']:.0f} MB"
        split = f"{r['read_s']:.1f} / {r['list_s']:.1f} / {r['rest_s']:.1f} s"
        lines.append(f"| {int(r['records']):,} | {plan} | {sync} | {person} | {split} |")
    return "\n".join(lines)


def run(figures: Figures, *, quick: bool = False) -> None:
    sizes = (10_000, 30_000) if quick else (10_000, 100_000, 1_000_000)
    for line in benchlib.machine_lines():
        print(f"  {line}")
    rows = [measure(figures, records) for records in sizes]
    print("\n" + "\n".join(benchlib.machine_lines()))
    print(table(rows))


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
