"""Target 4: the write path - client CPU per create, whole-run throughput against the mock, and the throttled mock.

Client CPU per create (`client_cpu`): one thread posts creates to the fast stand-in server
(`standin.py`, an asyncio server in another process that answers 201 at once, so the server is not
the limit), and the thread's own CPU time (`time.thread_time`) is divided by the creates it made.
Side by side, in interleaved rounds: the flagsync gateway's `create_flag` (alone, and with the
app's Prometheus metrics), and a bare `requests.Session` loop posting the same requests. The same
script run with another checkout's Python environment measures that checkout's gateway (it finds
`flagsync.adapters.one.gateway`, or the original `flagsync.adapters.one_http`).

Whole run (`whole_run_pairs`): 10,000 creates against `flagsync-mock` (reset between runs), as
interleaved pairs - `flagsync sync --json` (the run's `durationSeconds`: reading the source, listing
One, writing and recording, without Python start-up), then a bare loop of 8 threads, each with its
own requests.Session, sharing one token, posting the same creates with distinct Idempotency-Keys -
repeated; each pair's ratio is printed, and the median ratio is the figure.

Throttled (`throttled`): the CLI against the mock limited to 25 requests/s, without and with client pacing.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib
import requests
import standin
from benchlib import Figures

THROTTLE = 25.0
CREATE_BODY = b'{"involvementType":"PIAS_WORKING_WITH_FAMILY"}'
TARGET_CPU_RATIO = 0.6  # flagsync's client CPU per create, over the original gateway's (commit 7f89097)
TARGET_RUN_RATIO = 1.2  # flagsync's whole run over the bare loop, median of the pairs


def bare_loop(base_url: str, people: range, threads: int = 8) -> tuple[int, float]:
    """Create one flag per person with `threads` threads; returns (created, seconds)."""
    token = requests.post(
        f"{base_url}/connect/token",
        data={"grant_type": "client_credentials", "client_id": benchlib.CLIENT_ID, "client_secret": benchlib.CLIENT_SECRET},
        timeout=10,
    ).json()["access_token"]
    created = [0] * threads
    errors: list[str] = []

    def worker(index: int) -> None:
        with requests.Session() as session:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
            for n in people[index::threads]:
                response = session.post(
                    base_url + benchlib.CREATE_PATH.format(benchlib.person_id(n)),
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                    data=b'{"involvementType":"PIAS_WORKING_WITH_FAMILY"}',
                    timeout=(3.05, 30),
                )
                if response.status_code == 201:
                    created[index] += 1
                else:
                    errors.append(str(response.status_code))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  bare loop: {len(errors)} non-201 answers, e.g. {errors[:5]}")
    return sum(created), elapsed


# ----------------------------------------------------------------------------------------------
# Client CPU per create, against the fast stand-in


def _gateway(base_url: str, *, with_metrics: bool) -> tuple[Any, str]:
    """The gateway of the flagsync on sys.path (this checkout's, or the original one_http's), and which it is."""
    try:
        from pydantic import SecretStr  # noqa: PLC0415

        from flagsync.adapters.one.endpoint import OneEndpoint  # noqa: PLC0415 - whichever flagsync is installed
        from flagsync.adapters.one.gateway import HttpFlagGateway  # noqa: PLC0415
    except ImportError:
        from flagsync.adapters.one_http import HttpFlagGateway as Original  # noqa: PLC0415 - commit 7f89097 and before

        from flagsync.metrics import Metrics as OriginalMetrics  # noqa: PLC0415

        hooks: dict[str, Any] = {}
        if with_metrics:
            metrics = OriginalMetrics()
            hooks = {"on_request": metrics.on_request, "on_retry": metrics.on_retry}
        gateway = Original(
            base_url=base_url, token_url=None, client_id=benchlib.CLIENT_ID, client_secret=benchlib.CLIENT_SECRET, **hooks
        )
        return gateway, "flagsync.adapters.one_http"
    from flagsync.metrics import Metrics  # noqa: PLC0415

    endpoint = OneEndpoint(
        base_url=base_url,
        token_url=base_url + "/connect/token",
        client_id=benchlib.CLIENT_ID,
        client_secret=SecretStr(benchlib.CLIENT_SECRET),
    )
    return HttpFlagGateway(endpoint, telemetry=Metrics() if with_metrics else None), "flagsync.adapters.one.gateway"


def _bare_creator(base_url: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A bare requests.Session posting the same create as the gateway; (create person n, close)."""
    session = requests.Session()
    token = session.post(
        f"{base_url}/connect/token",
        data={"grant_type": "client_credentials", "client_id": benchlib.CLIENT_ID, "client_secret": benchlib.CLIENT_SECRET},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}

    def create(n: int) -> None:
        response = session.post(
            base_url + benchlib.CREATE_PATH.format(benchlib.person_id(n)),
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            data=CREATE_BODY,
            timeout=(3.05, 30),
        )
        if response.status_code != 201:
            raise RuntimeError(f"the stand-in answered {response.status_code}")

    return create, session.close


def _gateway_creator(base_url: str, *, with_metrics: bool) -> tuple[Callable[[int], None], Callable[[], None]]:
    gateway, _ = _gateway(base_url, with_metrics=with_metrics)

    def create(n: int) -> None:
        gateway.create_flag(benchlib.person_id(n), uuid.uuid4().hex)

    return create, getattr(gateway, "close", lambda: None)


def _timed(create: Callable[[int], None], count: int) -> tuple[float, float]:
    """(CPU seconds of this thread, wall seconds) for `count` creates in a row."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for n in range(count):
        create(n)
    return time.thread_time() - cpu, time.perf_counter() - wall


def client_cpu(figures: Figures, *, count: int, rounds: int) -> None:
    """Client CPU-ms per create and creates/s of one thread: the gateway (alone, with metrics) and a bare loop, interleaved."""
    kinds = {
        "gateway": lambda url: _gateway_creator(url, with_metrics=False),
        "gateway_metrics": lambda url: _gateway_creator(url, with_metrics=True),
        "bare_requests": _bare_creator,
    }
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    rate: dict[str, list[float]] = {kind: [] for kind in kinds}
    with standin.standin() as url:
        _, which = _gateway(url, with_metrics=False)
        print(f"  client CPU: {which}, {count} creates a round, {rounds} interleaved rounds, one thread, stand-in {url}")
        made = {kind: factory(url) for kind, factory in kinds.items()}
        try:
            for create, _ in made.values():
                _timed(create, 200)  # warm: connections, token, caches
            for round_number in range(rounds):
                for kind, (create, _) in made.items():
                    used, wall = _timed(create, count)
                    cpu[kind].append(1000 * used / count)
                    rate[kind].append(count / wall)
                line = ", ".join(f"{kind} {cpu[kind][-1]:.3f} ms ({rate[kind][-1]:.0f}/s)" for kind in kinds)
                print(f"  round {round_number + 1}: {line}")
        finally:
            for _, close in made.values():
                close()
    for kind in kinds:
        figures.add(f"client_cpu.{kind}", statistics.median(cpu[kind]), "CPU-ms a create (median of rounds)")
        figures.add(f"client_cpu.{kind}.rate", statistics.median(rate[kind]), "creates/s (one thread)")
    figures.add("client_cpu.gateway_over_bare", statistics.median(cpu["gateway"]) / statistics.median(cpu["bare_requests"]), "")


# ----------------------------------------------------------------------------------------------
# Whole run against the mock, interleaved with a bare loop


def _flagsync_run(mock: benchlib.MockServer, ws: benchlib.Workspace, people: int) -> tuple[int, float, float, float, float]:
    """A converging `flagsync sync --json` from a reset mock and no state.

    Returns (adds, durationSeconds, command wall s, the command's CPU s, the mock's CPU s meanwhile).
    """
    mock.reset()
    ws.fresh_state()
    mock_cpu = benchlib.process_cpu_seconds(mock.pid)
    run = ws.cli("sync", "--json")
    mock_cpu = benchlib.process_cpu_seconds(mock.pid) - mock_cpu
    doc = run.json()
    adds, duration = doc["counts"]["adds"], doc["durationSeconds"]
    flags = len(mock.active_flags())
    if run.code != 0 or adds != people or flags != people:
        raise RuntimeError(f"flagsync sync: exit {run.code}, {adds} adds, {flags} flags in One")
    return adds, float(duration), run.wall_s, run.cpu_s, mock_cpu


def _bare_run(mock: benchlib.MockServer, people: int) -> tuple[int, float, float, float]:
    """The bare loop from a reset mock: (created, seconds, this process's CPU s, the mock's CPU s meanwhile)."""
    mock.reset()
    mock_cpu, own_cpu = benchlib.process_cpu_seconds(mock.pid), time.process_time()
    created, seconds = bare_loop(mock.url, range(people))
    return created, seconds, time.process_time() - own_cpu, benchlib.process_cpu_seconds(mock.pid) - mock_cpu


def whole_run_pairs(figures: Figures, people: int, pairs: int, warmup: int = 1) -> None:
    """`pairs` interleaved (flagsync whole run, bare loop) pairs of `people` creates each; each ratio and the median.

    `warmup` pairs run first and are printed but not counted (the mock's first requests, file caches).
    """
    ratios: list[float] = []
    runs: list[float] = []
    bares: list[float] = []
    with benchlib.mock_and_workspace(people=people) as (mock, ws):
        for _ in range(warmup):
            adds, duration, *_ = _flagsync_run(mock, ws, people)
            created, seconds, *_ = _bare_run(mock, people)
            rates = f"flagsync run {adds / duration:.0f} creates/s, bare loop {created / seconds:.0f} creates/s"
            print(f"  warm-up (not counted): {rates}")
        for pair in range(pairs):
            adds, duration, wall, cpu, mock_cpu = _flagsync_run(mock, ws, people)
            created, seconds, bare_cpu, bare_mock_cpu = _bare_run(mock, people)
            if created != people:
                raise RuntimeError(f"the bare loop created {created} of {people}")
            runs.append(adds / duration)
            bares.append(created / seconds)
            ratios.append(runs[-1] / bares[-1])
            print(
                f"  pair {pair + 1}: flagsync run {runs[-1]:.0f} creates/s ({duration:.2f} s, command {wall:.2f} s),"
                f" bare loop {bares[-1]:.0f} creates/s ({seconds:.2f} s), ratio {ratios[-1]:.3f};"
                f" CPU-ms a create, client/mock: flagsync {1000 * cpu / adds:.2f}/{1000 * mock_cpu / adds:.2f}"
                f" (the whole command), bare loop {1000 * bare_cpu / created:.2f}/{1000 * bare_mock_cpu / created:.2f}"
            )
    median = statistics.median(ratios)
    figures.add(
        f"throughput.flagsync_{people}_run", statistics.median(runs), "creates/s (median; whole run, CLI durationSeconds)"
    )
    figures.add(f"throughput.bare_loop_{people}", statistics.median(bares), "creates/s (median)")
    figures.add(
        f"throughput.ratio_{people}_run",
        median,
        f"median of {pairs} pairs ({', '.join(f'{r:.3f}' for r in ratios)})",
        target=f">= {TARGET_RUN_RATIO}",
        ok=median >= TARGET_RUN_RATIO,
    )


def throttled(figures: Figures, people: int) -> None:
    with benchlib.mock_and_workspace(people=people) as (mock, ws):
        for pacing in (0, THROTTLE):
            mock.reset()
            mock.set_faults({"rateLimit": {"perSecond": THROTTLE, "burst": int(THROTTLE)}})
            ws.fresh_state()
            ws.write_config(one={"max_requests_per_second": pacing})
            since = mock.last_seq()
            run = ws.cli("sync", "--json")
            doc = run.json()
            counts = benchlib.journal_counts(mock.journal(since))
            limited = sum(n for key, n in counts.items() if key.endswith(" 429"))
            adds, duration, failed = doc["counts"]["adds"], doc["durationSeconds"], doc["counts"]["failed"]
            rate = adds / duration
            label = f"throughput.throttled_pacing_{int(pacing)}"
            print(f"  {label}: exit {run.code}, {adds} adds, {failed} failed, run {duration:.2f} s, requests {counts}")
            figures.add(f"{label}.rate", rate, "creates/s")
            figures.add(
                f"{label}.ratio", rate / THROTTLE, "of 25/s", target=">= 0.9", ok=rate / THROTTLE >= 0.9 and adds == people
            )
            figures.add(f"{label}.429s", limited, "answers", target=f"no storm (< 5% of {people})", ok=limited < 0.05 * people)


def run(figures: Figures, *, quick: bool = False) -> None:
    client_cpu(figures, count=500 if quick else 2000, rounds=3 if quick else 5)
    whole_run_pairs(figures, 2000 if quick else 10_000, 3 if quick else 5)
    throttled(figures, 250 if quick else 750)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster variant")
    parser.add_argument("--only", choices=["client-cpu", "pairs", "throttled"], action="append", help="only these parts")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved whole-run pairs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted pairs before them (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved client CPU rounds (default 5)")
    parser.add_argument("--count", type=int, default=2000, help="creates per client CPU round (default 2000)")
    args = parser.parse_args()
    figures = Figures()
    for line in benchlib.machine_lines():
        print(line)
    print(f"  flagsync from {Path(__import__('flagsync').__file__).parent}")
    parts = set(args.only or ["client-cpu", "pairs", "throttled"])
    if "client-cpu" in parts:
        client_cpu(figures, count=500 if args.quick else args.count, rounds=3 if args.quick else args.rounds)
    if "pairs" in parts:
        whole_run_pairs(figures, 2000 if args.quick else 10_000, args.pairs, args.warmup)
    if "throttled" in parts:
        throttled(figures, 250 if args.quick else 750)
    print("\n" + benchlib.summary_table(figures.items))


if __name__ == "__main__":
    main()
