"""Parsing now against another checkout (the original: commit 7f89097), in interleaved pairs of processes.

    git worktree add /tmp/flagsync-original 7f89097
    .venv/bin/python benchmarks/bench_parse_pairs.py --before /tmp/flagsync-original [--pairs 3]

Each side runs in its own process with that checkout first on `sys.path` (the same interpreter and
libraries), one after the other, pair by pair: `parse_record` over 100,000 rows with repeated and
with distinct timestamps (`benchlib.contract_rows`, as `bench_core.py`), and the SQL and CSV sources' `read_all` over
the same 100,000 rows (SQLite table and CSV export from `benchlib`); each figure the least CPU
time of three runs. Prints each pair's ratio and the median per figure. The measuring half uses
only what both versions share (`parse_record`, the sources' constructors and `read_all`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import benchlib  # noqa: E402 - after its directory; it imports no flagsync, so either checkout's side can use it

ROWS = 100_000
ZONE = ZoneInfo("Europe/London")
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TARGET = 3.0


def measure(data: Path) -> dict[str, float]:
    """One side's figures (run in a process whose `sys.path` starts with the checkout measured)."""
    from flagsync.core.records import parse_record  # noqa: PLC0415 - whichever checkout is first on sys.path

    try:
        from flagsync.adapters.csv import CsvConsentSource  # noqa: PLC0415
        from flagsync.adapters.sql import SqlConsentSource  # noqa: PLC0415
    except ImportError:  # the original layout
        from flagsync.adapters.csv_source import CsvConsentSource  # type: ignore[no-redef]  # noqa: PLC0415
        from flagsync.adapters.sql_source import SqlConsentSource  # type: ignore[no-redef]  # noqa: PLC0415

    figures: dict[str, float] = {}
    for distinct in (False, True):
        batch = benchlib.contract_rows(ROWS, distinct=distinct)

        def parse_all(batch: list[dict[str, object]] = batch) -> int:
            for row in batch:
                parse_record(row, now=NOW, zone=ZONE)
            return len(batch)

        seconds, parsed = benchlib.least_cpu(parse_all)
        figures["parse_record_distinct_us" if distinct else "parse_record_repeated_us"] = seconds / parsed * 1e6
    sql: Any = SqlConsentSource(f"sqlite:///{data / 'consent.db'}", "consent_records", None, ZONE)
    seconds, read = benchlib.least_cpu(lambda: sum(1 for _ in sql.read_all(NOW)))
    figures["sql_read_all_rows_per_s"] = read / seconds
    csv_source: Any = CsvConsentSource(data / "consent.csv", None, ZONE)
    seconds, read = benchlib.least_cpu(lambda: sum(1 for _ in csv_source.read_all(NOW)))
    figures["csv_read_all_rows_per_s"] = read / seconds
    return figures


def _side(checkout: Path, data: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(  # noqa: S603 - this script, with fixed arguments
        [sys.executable, __file__, "--measure", str(data)], env=env, capture_output=True, text=True, check=True
    ).stdout
    figures: dict[str, float] = json.loads(out.splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", type=Path, help="the checkout to compare with (e.g. a worktree of 7f89097)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: one side, as JSON
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return 0
    if args.before is None:
        parser.error("--before CHECKOUT is required")
    for line in benchlib.machine_lines():
        print(f"  {line}")
    with tempfile.TemporaryDirectory(prefix="flagsync-parse-pairs-") as tmp:
        data = Path(tmp)
        benchlib.create_consent_db(data / "consent.db", ROWS, range(0, ROWS, 10))
        benchlib.create_consent_csv(data / "consent.csv", ROWS, range(0, ROWS, 10))
        ratios: dict[str, list[float]] = {}
        for pair in range(1, args.pairs + 1):
            before, now = _side(args.before, data), _side(REPO, data)
            for name in before:
                # times: before / now; rates: now / before (so a ratio above 1 is always "faster now")
                ratio = before[name] / now[name] if name.endswith("_us") else now[name] / before[name]
                ratios.setdefault(name, []).append(ratio)
                print(f"  pair {pair}: {name}: before {before[name]:,.2f}, now {now[name]:,.2f}, {ratio:.2f}x", flush=True)
    for name, values in ratios.items():
        median = statistics.median(values)
        verdict = "met" if median >= TARGET else "below"
        print(f"{name}: median {median:.2f}x of {', '.join(f'{v:.2f}' for v in values)}  (target >= {TARGET:g}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
