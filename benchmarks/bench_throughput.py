"""Target 4: write throughput of a full reconcile against the unthrottled and the throttled mock.

Three flagsync figures, each against a freshly reset mock: the write phase alone, timed in-process
(build_app + load_settings, from the first to the last APPLY progress callback: the same span the
bare loop times); the whole run as `flagsync sync --json` reports it (`durationSeconds`: reading the
source, listing One, writing and recording, without Python start-up); and the whole command's wall
time. The baseline is a bare loop of 8 threads, each with its own requests.Session, sharing one
token, posting the same creates with distinct Idempotency-Keys to the same mock. The throttled
figures come from the CLI subprocess.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid

import benchlib
import requests
from benchlib import Figures

from flagsync.bootstrap import build_app
from flagsync.core.model import RunTrigger
from flagsync.logs import configure_logging
from flagsync.service import Phase
from flagsync.settings import load_settings

THROTTLE = 25.0


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


def apply_phase(ws: benchlib.Workspace) -> tuple[int, float]:
    """Run a full sync in-process; returns (adds, seconds from the first to the last write-phase progress call)."""
    marks: list[float] = []

    def progress(phase: Phase, done: int, total: int | None) -> None:
        if phase is Phase.APPLY and done in (0, total):
            marks.append(time.perf_counter())

    app = build_app(load_settings(config_file=ws.config, env=ws.env()))
    configure_logging(format="json", level="WARNING", pseudonymizer=app.pseudonymizer, stream=sys.stderr)
    try:
        report = app.service.sync(trigger=RunTrigger.OPERATOR, progress=progress)
    finally:
        app.close()
    return report.counts()["adds"], marks[-1] - marks[0]


def unthrottled(figures: Figures, people: int) -> None:
    with benchlib.mock_and_workspace(people=people) as (mock, ws):
        created, seconds = bare_loop(mock.url, range(people))
        bare_rate = created / seconds
        print(f"  bare loop: {created} creates in {seconds:.2f} s")
        mock.reset()
        applied, apply_s = apply_phase(ws)
        print(f"  flagsync in-process: {applied} creates in a write phase of {apply_s:.2f} s")
        mock.reset()
        ws.fresh_state()
        run = ws.cli("sync", "--json")
        doc = run.json()
        adds, duration = doc["counts"]["adds"], doc["durationSeconds"]
        flags = len(mock.active_flags())
        print(f"  flagsync sync: exit {run.code}, {adds} adds, run {duration:.2f} s, command {run.wall_s:.2f} s, {flags} in One")
    rate = applied / apply_s
    figures.add(f"throughput.bare_loop_{people}", bare_rate, "creates/s")
    figures.add(f"throughput.flagsync_{people}_write_phase", rate, "creates/s")
    figures.add(f"throughput.ratio_{people}_write_phase", rate / bare_rate, "", target=">= 0.8", ok=rate / bare_rate >= 0.8)
    figures.add(
        f"throughput.flagsync_{people}_run", adds / duration, "creates/s (whole run, CLI)", ok=flags == people and run.code == 0
    )
    figures.add(f"throughput.ratio_{people}_run", adds / duration / bare_rate, "(informational: includes reading and recording)")
    figures.add(f"throughput.flagsync_{people}_command", adds / run.wall_s, "creates/s (whole command incl. start-up)")


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
    unthrottled(figures, 2000 if quick else 10_000)
    throttled(figures, 250 if quick else 750)


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
