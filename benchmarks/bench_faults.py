"""Target 6: convergence under injected faults for 500 people: runs needed (<= 3) and duplicates (0) (CLI subprocess).

Faults (seeded): 20% of writes answer 5xx, 5% of API requests 429 with Retry-After, 5% of writes
answer 504 after committing, 5% of API requests lose their connection, and tokens live 2 s. The
people: 450 granted, of whom 225 already have a flag; 50 refused, of whom 20 still have one (20
removals: under both mass-removal limits). `flagsync sync` runs until it exits 0 (at most 5 runs);
then the faults are cleared and One is checked: exactly the granted people flagged, each once.
A second scenario kills the first run (SIGKILL) as soon as One has seen 50 writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import benchlib
from benchlib import Figures

PEOPLE = 500
GRANTED = range(450)
PREFLAGGED = [*range(225), *range(450, 470)]
MAX_RUNS = 5

FAULTS = {
    "seed": 11,
    "rules": [
        {"method": "POST", "path": "/api/v1/people/*/involvements", "status": 504, "afterCommit": True, "probability": 0.05},
        {"method": "DELETE", "path": "/api/v1/involvements/*", "status": 504, "afterCommit": True, "probability": 0.05},
        {"path": "/api/*", "dropConnection": True, "probability": 0.05},
        {"path": "/api/*", "status": 429, "code": "RATE_LIMITED", "retryAfter": 1, "probability": 0.05},
        {"method": "POST", "path": "/api/v1/people/*/involvements", "status": 503, "retryAfter": 1, "probability": 0.2},
        {"method": "DELETE", "path": "/api/v1/involvements/*", "status": 500, "probability": 0.2},
    ],
    "tokenTtlSeconds": 2,
}


def kill_after_writes(ws: benchlib.Workspace, mock: benchlib.MockServer, writes: int) -> None:
    """Start `flagsync sync` and SIGKILL it once One has seen `writes` write requests (or it ends)."""
    since = mock.last_seq()
    proc = ws.start("sync")
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            seen = sum(1 for r in mock.journal(since) if r["method"] in ("POST", "DELETE") and r["path"] != "/connect/token")
            if seen >= writes:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    finally:
        benchlib.stop_process(proc)


def scenario(figures: Figures, label: str, *, kill_first: bool) -> None:
    with benchlib.mock_and_workspace(people=PEOPLE, granted=GRANTED) as (mock, ws):
        for who in PREFLAGGED:
            mock.add_flag(benchlib.person_id(who))
        mock.set_faults(FAULTS)
        runs, codes = 0, []
        if kill_first:
            kill_after_writes(ws, mock, 50)
            runs, codes = 1, ["killed"]
        while runs < MAX_RUNS:
            result = ws.cli("sync", "--json")
            runs += 1
            codes.append(str(result.code))
            if result.code == 0:
                break
        fired = sum(rule["fired"] for rule in mock.fault_state()["rules"])
        mock.clear_faults()
        flags = mock.active_flags()
    wanted = {benchlib.person_id(n) for n in GRANTED}
    duplicates = sum(count - 1 for count in flags.values())
    missing = len(wanted - flags.keys())
    missed_removals = len(flags.keys() - wanted)
    print(f"  {label}: exit codes per run {codes}; {fired} faults injected; {len(flags)} people flagged")
    figures.add(f"{label}.runs_to_converge", runs, "runs", target="<= 3", ok=codes[-1] == "0" and runs <= 3)
    figures.add(f"{label}.duplicates", duplicates, "", target="0", ok=duplicates == 0)
    figures.add(f"{label}.missing_flags", missing, "", target="0", ok=missing == 0)
    figures.add(f"{label}.missed_removals", missed_removals, "", target="0", ok=missed_removals == 0)


def run(figures: Figures, *, quick: bool = False) -> None:
    scenario(figures, "faults", kill_first=False)
    if not quick:
        scenario(figures, "faults_killed_run", kill_first=True)


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
