"""Target 1: a run where nothing changed makes zero writes and only the listing requests (CLI subprocess)."""

from __future__ import annotations

import benchlib
from benchlib import Figures

WRITES = ("POST /api/v1/people/", "DELETE ", "PUT ", "PATCH ")


def run(figures: Figures, *, quick: bool = False) -> None:
    people = 500 if quick else 2000
    granted = range(0, people, 2)  # half granted, half refused
    with benchlib.mock_and_workspace(people=people, granted=granted) as (mock, ws):
        first = ws.cli("sync", "--json")
        if first.code != 0:
            raise RuntimeError(f"the converging run failed (exit {first.code}): {first.stderr[-2000:]}")
        since = mock.last_seq()
        second = ws.cli("sync", "--json")
        counts = benchlib.journal_counts(mock.journal(since))
    flags = len(granted)
    pages = -(-flags // 100)
    writes = sum(n for key, n in counts.items() if key.startswith(WRITES))
    listing = sum(n for key, n in counts.items() if key.startswith("GET /api/v1/involvements "))
    other = sum(counts.values()) - writes - listing - sum(n for key, n in counts.items() if key.startswith("POST /connect/token"))
    print(f"  second run ({people} people, {flags} flags): exit {second.code}, requests {counts}")
    figures.add("steady.second_run_exit", second.code, target="0", ok=second.code == 0)
    figures.add("steady.writes", writes, "requests", target="0", ok=writes == 0)
    figures.add("steady.listing_requests", listing, "requests", target=f"{pages} pages of 100", ok=listing == pages)
    figures.add("steady.other_api_requests", other, "requests (token excluded)", target="0", ok=other == 0)
    figures.add("steady.second_run_wall", second.wall_s, "s")


if __name__ == "__main__":
    benchlib.main_for(run, __doc__ or "")
