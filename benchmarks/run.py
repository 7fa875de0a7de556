"""Runs every benchmark (or --quick: a ~2 minute subset) and prints each figure, then one summary table."""

from __future__ import annotations

import argparse
import platform
import time
import traceback
from datetime import UTC, datetime

import bench_core
import bench_faults
import bench_person
import bench_person_scale
import bench_scale
import bench_steady
import bench_throughput
import bench_withdrawal
import benchlib

BENCHMARKS = {
    "steady": bench_steady.run,
    "person": bench_person.run,
    "person_scale": bench_person_scale.run,
    "core": bench_core.run,
    "throughput": bench_throughput.run,
    "scale": bench_scale.run,
    "faults": bench_faults.run,
    "withdrawal": bench_withdrawal.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller variants, about 2 minutes in all")
    parser.add_argument("only", nargs="*", choices=[*BENCHMARKS, []], help="run only these (default: all)")
    args = parser.parse_args()
    figures = benchlib.Figures()
    failed: list[str] = []
    started = time.monotonic()
    for name, run in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        began = time.monotonic()
        try:
            run(figures, quick=args.quick)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"   ({time.monotonic() - began:.0f} s)", flush=True)
    print(f"\nSummary ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {time.monotonic() - started:.0f} s in all)")
    print(benchlib.summary_table(figures.items))
    missed = [f.name for f in figures.items if f.ok is False]
    if failed:
        print(f"\nBenchmarks that failed to run: {', '.join(failed)}")
    if missed:
        print(f"Targets missed: {', '.join(missed)}")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
