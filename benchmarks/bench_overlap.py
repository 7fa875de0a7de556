"""Where a large full run's time goes, and what running its two halves side by side buys on this machine.

A full run reads (and folds) the whole consent source and lists every flag of ours in One. Today the
listing runs in a thread during the read (flagsync/service/listing.py). This script measures, in
process, on an app built from a benchmark workspace (SQLite, N records one per person, 10% granted
and flagged):

- `list alone`: `HttpFlagGateway.list_flags`, nothing else running;
- `read+fold alone`: `read_all` into a `Gatherer`;
- `threads`: both at once as a full run does it, the listing in a thread, with each thread's CPU
  time (`time.thread_time`), so the cost of sharing one interpreter shows as CPU the read did not
  need alone;
- `processes`: the read and fold in a spawned process (its own interpreter and app) whose compact
  store comes back through a pipe, while this process lists One: the next structural step
  considered for the million-record target, measured here before anyone builds it. RSS is given
  for both processes: that design holds the fold twice while the store is handed over.

Each mode runs `--rounds` times (default 3), interleaved; the medians are printed. The listing talks
to a local `flagsync-mock`, which needs a core of its own while it serves pages.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import threading
import time
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import benchlib

from flagsync.bootstrap import App, build_app
from flagsync.core.fold import CompactStore, Gatherer, compact_store
from flagsync.logs import configure_logging
from flagsync.settings import load_settings


def _app(config: Path, env: dict[str, str]) -> App:
    app = build_app(load_settings(config_file=config, env=env))
    configure_logging(format="json", level="WARNING", pseudonymizer=app.pseudonymizer, stream=sys.stderr)
    return app


def _fold(app: App) -> CompactStore:
    gatherer = Gatherer()
    add = gatherer.add
    for item in app.source.read_all(datetime.now(UTC)):
        add(item)
    store = compact_store(gatherer.result())
    assert store is not None  # the Gatherer's result is always over its compact store
    return store


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def list_alone(app: App) -> dict[str, float]:
    started, cpu = time.perf_counter(), _cpu()
    flags = app.gateway.list_flags()
    return {"wall": time.perf_counter() - started, "cpu": _cpu() - cpu, "flags": len(flags)}


def fold_alone(app: App) -> dict[str, float]:
    started, cpu = time.perf_counter(), _cpu()
    _fold(app)
    return {"wall": time.perf_counter() - started, "cpu": _cpu() - cpu}


def threads(app: App) -> dict[str, float]:
    """The listing in a thread during the read, as a full run does it."""
    out: dict[str, float] = {}
    started, cpu = time.perf_counter(), _cpu()

    def listing() -> None:
        own = time.thread_time()
        app.gateway.list_flags()
        out["list_cpu"] = time.thread_time() - own
        out["list_wall"] = time.perf_counter() - started

    thread = threading.Thread(target=listing)
    own = time.thread_time()
    thread.start()
    _fold(app)
    out["read_cpu"] = time.thread_time() - own
    out["read_wall"] = time.perf_counter() - started
    thread.join()
    out["wall"] = time.perf_counter() - started
    out["cpu"] = _cpu() - cpu
    return out


def _child(conn: Connection, config: Path, env: dict[str, str]) -> None:
    """Spawned: build the app, read and fold, send the store back buffer by buffer (no pickled copy), then CPU and RSS."""
    app = _app(config, env)
    try:
        store = _fold(app)
        people = store.people
        buffers = (people._keys, people._starts, people._hashes, people._slots, store.rows, store.record_ids)
        for buffer in buffers:
            conn.send_bytes(buffer)
        conn.send((people._mask, people._count, store.versions, store.quarantined, store.unmatched))
        conn.send((_cpu(), _peak_rss_mb()))
    finally:
        app.close()
        conn.close()


def _received_store(conn: Connection) -> tuple[CompactStore, int]:
    """The child's compact store, rebuilt from its buffers in the order `_child` sends them; and the bytes received."""
    store = CompactStore()
    people = store.people
    people._keys = bytearray(conn.recv_bytes())
    people._starts = array("Q", conn.recv_bytes())
    people._hashes = array("I", conn.recv_bytes())
    people._slots = array("i", conn.recv_bytes())
    store.rows = bytearray(conn.recv_bytes())
    store.record_ids = bytearray(conn.recv_bytes())
    people._mask, people._count, store.versions, store.quarantined, store.unmatched = conn.recv()
    store.version_numbers = {v: n for n, v in enumerate(store.versions) if v is not None}
    return store, people.nbytes() + len(store.rows) + len(store.record_ids)


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would include the parent's, which Linux carries across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def processes(app: App, config: Path, env: dict[str, str]) -> dict[str, float]:
    """Read and fold in a spawned process while this one lists One; the store comes back through a pipe."""
    started, cpu = time.perf_counter(), _cpu()
    spawn = multiprocessing.get_context("spawn")
    receiver, sender = spawn.Pipe(duplex=False)
    child = spawn.Process(target=_child, args=(sender, config, env))
    child.start()
    sender.close()
    app.gateway.list_flags()
    list_wall = time.perf_counter() - started
    store, size = _received_store(receiver)
    child_cpu, child_rss = receiver.recv()
    wall = time.perf_counter() - started
    child.join()
    return {
        "wall": wall,
        "list_wall": list_wall,
        "cpu": _cpu() - cpu,
        "child_cpu": child_cpu,
        "child_rss": child_rss,
        "people": len(store.people),
        "payload_mb": size / 1e6,
    }


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def run(figures: benchlib.Figures, *, quick: bool = False, records: int | None = None, rounds: int = 3) -> None:
    count = records or (100_000 if quick else 1_000_000)
    tag = f"overlap_{count // 1000}k"
    for line in benchlib.machine_lines():
        print(f"  {line}")
    with benchlib.mock_and_workspace(people=count, granted=range(0, count, 10)) as (_mock, ws):
        first = ws.cli("sync", "--json", timeout=3600)
        if first.code != 0:
            raise RuntimeError(f"the converging run failed (exit {first.code}): {first.stderr[-500:]}")
        print(f"  {count:,} records: converging run {first.json()['counts']['adds']} adds in {first.wall_s:.0f} s", flush=True)
        env = ws.env()
        app = _app(ws.config, env)
        modes: dict[str, Callable[[], dict[str, Any]]] = {
            "list_alone": lambda: list_alone(app),
            "fold_alone": lambda: fold_alone(app),
            "threads": lambda: threads(app),
            "processes": lambda: processes(app, ws.config, env),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
        try:
            for n in range(rounds):
                for name, mode in modes.items():
                    got = mode()
                    results[name].append(got)
                    shown = ", ".join(f"{key} {value:.2f}" for key, value in got.items())
                    print(f"  round {n + 1} {name}: {shown}", flush=True)
        finally:
            app.close()
        own_rss = _peak_rss_mb()
    handed_over = {int(row["people"]) for row in results["processes"]}
    if handed_over != {count}:
        raise RuntimeError(f"the child's store came back with {handed_over} people, not {count}")
    for name, rows in results.items():
        for key in rows[0]:
            unit = "MB" if key.endswith(("rss", "_mb")) else "" if key in ("flags", "people") else "s"
            figures.add(f"{tag}.{name}.{key}", round(_median(rows, key), 2), unit)
    alone = _median(results["list_alone"], "wall") + _median(results["fold_alone"], "wall")
    figures.add(f"{tag}.one_after_the_other", round(alone, 2), "s")
    figures.add(f"{tag}.this_process_peak_rss", round(own_rss, 0), "MB")
    inflation = _median(results["threads"], "read_cpu") / _median(results["fold_alone"], "cpu")
    figures.add(f"{tag}.threads.read_cpu_over_alone", round(inflation, 2), "x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 records instead of 1,000,000")
    parser.add_argument("--records", type=int, help="records (one per person) in the workspace")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every mode (default 3)")
    args = parser.parse_args()
    figures = benchlib.Figures()
    run(figures, quick=args.quick, records=args.records, rounds=args.rounds)
    print(benchlib.summary_table(figures.items))


if __name__ == "__main__":
    main()
