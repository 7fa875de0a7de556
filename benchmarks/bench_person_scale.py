"""Target: `sync --person` costs the same at any table size: 1M records within 1.5x of 1,000, for SQLite and CSV.

For each source kind (a SQLite table with an index on person_id, as `docs/consent-source-indexes.md` asks,
and a CSV export of the same rows) and each size (1,000 and 1,000,000 records, one per person, 10% granted):
converge with a full `sync`, then

- in-process: an app built once (build_app + load_settings), `SyncService.sync` for one person at a
  time, a different person each run, nothing to change (read the person's records, list their flags
  in One, plan). The first run is reported apart: for CSV it builds the per-file person index. The
  figure compared is the median of the later runs (for CSV, timed once the index the first run
  built has been saved: its saving runs in a background thread).
- command: `flagsync sync --person` as a subprocess (Python start-up included). First once right
  after the source changed (a refusal recorded for an already refused person, then a pause past
  the 2 s racy window): for CSV this process finds the saved person index out of date, builds its
  own and saves it. Then the median wall time of three more runs, which for CSV read the saved index.

`--quick` uses 1,000 and 100,000 records. Generated files live in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import statistics
import sys
import time

import benchlib
from benchlib import Figures

from flagsync.adapters.csv import CsvConsentSource
from flagsync.bootstrap import build_app
from flagsync.core.model import RunTrigger
from flagsync.logs import configure_logging
from flagsync.settings import load_settings

RATIO_LIMIT = 1.5
APP_RUNS = 31
CLI_RUNS = 3


def measure(kind: str, records: int) -> dict[str, float]:
    """Person-sync times for one source kind and table size."""
    with benchlib.mock_and_workspace(people=records, granted=range(0, records, 10), kind=kind) as (_mock, ws):
        first = ws.cli("sync", "--json", timeout=3600)
        if first.code != 0:
            raise RuntimeError(f"the converging run failed (exit {first.code}): {first.stderr[-500:]}")
        people = [benchlib.person_id((7919 * (n + 1)) % min(records, 1000)) for n in range(APP_RUNS)]
        app = build_app(load_settings(config_file=ws.config, env=ws.env()))
        configure_logging(format="json", level="WARNING", pseudonymizer=app.pseudonymizer, stream=sys.stderr)
        times: list[float] = []
        cpu: list[float] = []
        try:
            for pid in people:
                started, started_cpu = time.perf_counter(), time.process_time()
                report = app.service.sync(trigger=RunTrigger.OPERATOR_PERSON, person_ids=frozenset({pid}))
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
                if report.outcome.value != "converged" or report.counts()["adds"] + report.counts()["removes"]:
                    raise RuntimeError(f"person sync was not a converged no-op: {report.outcome}, {report.counts()}")
                if len(times) == 1 and isinstance(app.source, CsvConsentSource):
                    app.source.close()  # wait for the index the first read built to be saved (a background thread)
        finally:
            app.close()
        ws.record_decision(records - 1, "refused", tag="bench-change")  # not granted: nothing to change in One
        time.sleep(2.2)  # past the racy window, so the index built next is one that may be saved
        walls: list[float] = []
        for pid in people[: CLI_RUNS + 1]:
            result = ws.cli("sync", "--person", pid, "--json")
            if result.code != 0:
                raise RuntimeError(f"sync --person failed (exit {result.code})")
            walls.append(result.wall_s)
    return {
        "first": times[0],
        "median": statistics.median(times[1:]),
        "cpu_median": statistics.median(cpu[1:]),
        "cli_after_change": walls[0],
        "cli": statistics.median(walls[1:]),
    }


def run(figures: Figures, *, quick: bool = False) -> None:
    small, large = 1_000, (100_000 if quick else 1_000_000)
    for line in benchlib.machine_lines():
        print(f"  {line}")
    for kind in ("sql", "csv"):
        results = {records: measure(kind, records) for records in (small, large)}
        for records, r in results.items():
            tag = f"person_scale.{kind}_{records // 1000}k"
            figures.add(f"{tag}.inprocess_first", r["first"] * 1000, "ms")
            figures.add(f"{tag}.inprocess_median", r["median"] * 1000, "ms")
            figures.add(f"{tag}.inprocess_cpu_median", r["cpu_median"] * 1000, "ms")
            figures.add(f"{tag}.command_after_change", r["cli_after_change"], "s")
            figures.add(f"{tag}.command_median", r["cli"], "s")
        ratio = results[large]["cpu_median"] / results[small]["cpu_median"]
        figures.add(
            f"person_scale.{kind}_ratio_{large // 1000}k_to_1k",
            ratio,
            "x (in-process CPU median)",
            target=f"<= {RATIO_LIMIT}",
            ok=ratio <= RATIO_LIMIT,
        )
        figures.add(
            f"person_scale.{kind}_wall_ratio_{large // 1000}k_to_1k",
            results[large]["median"] / results[small]["median"],
            "x (in-process wall median)",
        )
        command_ratio = results[large]["cli"] / results[small]["cli"]
        figures.add(
            f"person_scale.{kind}_command_ratio_{large // 1000}k_to_1k",
            command_ratio,
            "x (command median; CSV: through the saved index)",
            target=f"<= {RATIO_LIMIT}",
            ok=command_ratio <= RATIO_LIMIT,
        )


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
