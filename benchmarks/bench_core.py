"""Target 3's parts: parsing speed (rows/s) and the fold's memory per person (tracemalloc), in-process.

Parsing: `parse_record` over in-memory rows as a SQLite driver returns them (text values), once with
the benchmark tables' repeated timestamps and once with a distinct `recorded_at` and `updated_at` on
every row (what a real consent system holds); the same rows through one `RowParser` alone (values
already in contract order, as the sources hand them over); then `read_all` of the SQL and CSV
sources over the same 100,000 rows (read and parse, no fold). Least CPU time of three runs each.

Fold memory: a stream of freshly parsed records (one per person, distinct timestamps, 10% granted)
fed to `Gatherer.add`; tracemalloc's traced memory after the fold minus before, per person, is what
the fold holds. Then the peak of `result()` + `build_plan` above that, per person.
"""

from __future__ import annotations

import gc
import tempfile
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import benchlib
from benchlib import Figures

from flagsync.adapters.csv import CsvConsentSource
from flagsync.adapters.sql import SqlConsentSource
from flagsync.core.fold import Gatherer
from flagsync.core.model import CONTRACT_COLUMNS, Rules, SourceItem
from flagsync.core.planner import build_plan
from flagsync.core.records import RowParser, parse_record

ZONE = ZoneInfo("Europe/London")
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FOLD_LIMIT = 100.0  # bytes per person


def parse_all(batch: list[dict[str, object]]) -> int:
    count = 0
    for row in batch:
        parse_record(row, now=NOW, zone=ZONE)
        count += 1
    return count


def parse_alone(batch: list[tuple[object, ...]]) -> int:
    """The rows through one RowParser, as a source parses them (its column order already decided)."""
    parse = RowParser(now=NOW, zone=ZONE).parse
    for values in batch:
        parse(values)
    return len(batch)


def drain(items: Iterator[SourceItem]) -> int:
    return sum(1 for _ in items)


def fold_memory(figures: Figures, people: int) -> None:
    batch = benchlib.contract_rows(people, distinct=True)
    items = (parse_record(row, now=NOW, zone=ZONE) for row in batch)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    gatherer = Gatherer()
    for item in items:
        gatherer.add(item)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.reset_peak()
    plan = build_plan(gatherer.result(), [], NOW, Rules())
    peak = tracemalloc.get_traced_memory()[1] - before - held
    tracemalloc.stop()
    if len(plan.adds) != len(range(0, people, 10)):
        raise RuntimeError(f"the plan has {len(plan.adds)} adds, expected {len(range(0, people, 10))}")
    figures.add("core.fold_bytes_per_person", held / people, "B", target=f"<= {FOLD_LIMIT:.0f} B", ok=held / people <= FOLD_LIMIT)
    figures.add("core.plan_peak_bytes_per_person", peak / people, "B (result + build_plan, above the fold)")


def run(figures: Figures, *, quick: bool = False) -> None:
    count = 30_000 if quick else 100_000
    for line in benchlib.machine_lines():
        print(f"  {line}")
    for distinct in (False, True):
        batch = benchlib.contract_rows(count, distinct=distinct)
        seconds, parsed = benchlib.least_cpu(lambda batch=batch: parse_all(batch))
        name = "distinct_timestamps" if distinct else "repeated_timestamps"
        figures.add(f"core.parse_record_{name}", parsed / seconds, "rows/s")
        figures.add(f"core.parse_record_{name}_per_row", seconds / parsed * 1e6, "us")
        ordered = [tuple(map(row.get, CONTRACT_COLUMNS)) for row in batch]
        seconds, parsed = benchlib.least_cpu(lambda ordered=ordered: parse_alone(ordered))
        figures.add(f"core.row_parser_{name}_per_row", seconds / parsed * 1e6, "us")
    with tempfile.TemporaryDirectory(prefix="flagsync-bench-") as tmp:
        db, csv_file = Path(tmp) / "consent.db", Path(tmp) / "consent.csv"
        benchlib.create_consent_db(db, count, range(0, count, 10))
        benchlib.create_consent_csv(csv_file, count, range(0, count, 10))
        sql = SqlConsentSource(f"sqlite:///{db}", "consent_records", None, ZONE)
        try:
            seconds, read = benchlib.least_cpu(lambda: drain(sql.read_all(NOW)))
        finally:
            sql.close()
        figures.add("core.sql_read_all", read / seconds, "rows/s", ok=read == count)
        csv_source = CsvConsentSource(csv_file, None, ZONE)
        seconds, read = benchlib.least_cpu(lambda: drain(csv_source.read_all(NOW)))
        figures.add("core.csv_read_all", read / seconds, "rows/s", ok=read == count)
    fold_memory(figures, 50_000 if quick else 200_000)


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
