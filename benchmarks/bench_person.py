"""Target 3: on-demand single-person sync, as the whole `flagsync sync --person` command and in-process.

Each run finds a changed decision for the person (granted and withdrawn alternate), so every run
writes once: a create or a removal. The command figure is wall time including Python start-up;
the in-process figure is `SyncService.sync` alone on an app built once (build_app + load_settings).
"""

from __future__ import annotations

import sys
import time

import benchlib
from benchlib import Figures

from flagsync.bootstrap import build_app
from flagsync.core.model import RunTrigger
from flagsync.logs import configure_logging
from flagsync.settings import load_settings

PEOPLE = 1000  # others in the table and in One, so the person's lookup is not trivially small


def run(figures: Figures, *, quick: bool = False) -> None:
    runs = 5 if quick else 10
    with benchlib.mock_and_workspace(people=PEOPLE) as (mock, ws):
        if ws.cli("sync").code != 0:
            raise RuntimeError("the converging run failed")
        who = 42
        pid = benchlib.person_id(who)
        walls: list[float] = []
        for n in range(runs):
            benchlib.record_decision(ws.consent_db, who, "withdrawn" if n % 2 == 0 else "granted", tag=f"cli-{n}")
            result = ws.cli("sync", "--person", pid, "--json")
            doc = result.json()
            wrote = doc["counts"]["adds"] + doc["counts"]["removes"]
            if result.code != 0 or wrote != 1:
                raise RuntimeError(f"person sync {n} did not converge with one write (exit {result.code}, {doc['counts']})")
            walls.append(result.wall_s)
        service_s: list[float] = []
        app = build_app(load_settings(config_file=ws.config, env=ws.env()))
        configure_logging(format="json", level="WARNING", pseudonymizer=app.pseudonymizer, stream=sys.stderr)
        try:
            for n in range(runs):
                benchlib.record_decision(ws.consent_db, who, "withdrawn" if (runs + n) % 2 == 0 else "granted", tag=f"app-{n}")
                started = time.perf_counter()
                report = app.service.sync(trigger=RunTrigger.OPERATOR_PERSON, person_ids=frozenset({pid}))
                service_s.append(time.perf_counter() - started)
                if report.counts()["adds"] + report.counts()["removes"] != 1:
                    raise RuntimeError(f"in-process person sync {n} did not write once: {report.counts()}")
        finally:
            app.close()
        flags = mock.active_flags()
    print(f"  command wall times: {', '.join(f'{w:.2f}' for w in walls)} s")
    print(f"  in-process service times: {', '.join(f'{s * 1000:.0f}' for s in service_s)} ms (first includes connecting)")
    p95 = benchlib.percentile(walls, 95)
    figures.add("person.command_p50", benchlib.percentile(walls, 50), "s")
    figures.add("person.command_p95", p95, "s", target="< 2 s", ok=p95 < 2.0)
    figures.add("person.command_max", max(walls), "s")
    figures.add("person.service_p50", benchlib.percentile(service_s, 50) * 1000, "ms")
    figures.add("person.service_p95", benchlib.percentile(service_s, 95) * 1000, "ms")
    figures.add("person.flags_after", flags.get(pid, 0), "", target="1 (granted last)", ok=flags.get(pid, 0) == 1)


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
