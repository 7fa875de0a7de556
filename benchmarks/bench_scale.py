"""Target 5: 100,000 consent records (10% granted): a no-change `sync` and `plan` in seconds, under 200 MB (CLI subprocess).

The table carries personal-data columns beside the contract ones, as a real consent system's does.
Wall time and peak RSS are of the `flagsync` subprocess alone (os.wait4 rusage), start-up included.
"""

from __future__ import annotations

import benchlib
from benchlib import Figures

RSS_LIMIT_MB = 200.0


def run(figures: Figures, *, quick: bool = False) -> None:
    records = 30_000 if quick else 100_000
    people = records
    granted = range(0, people, 10)
    tag = f"scale_{records // 1000}k"
    with benchlib.mock_and_workspace(people=people, granted=granted) as (mock, ws):
        first = ws.cli("sync", "--json", timeout=900)
        doc = first.json()
        print(
            f"  converging run: exit {first.code}, {doc['counts']['adds']} adds in {first.wall_s:.1f} s, "
            f"peak RSS {first.max_rss_mb:.0f} MB"
        )
        since = mock.last_seq()
        again = ws.cli("sync", "--json")
        writes = sum(
            n
            for key, n in benchlib.journal_counts(mock.journal(since)).items()
            if not key.startswith(("GET ", "POST /connect/token"))
        )
        plan = ws.cli("plan", "--json")
        flags = len(mock.active_flags())
    figures.add(f"{tag}.first_sync_wall", first.wall_s, "s", ok=first.code == 0 and flags == len(granted))
    figures.add(
        f"{tag}.first_sync_rss", first.max_rss_mb, "MB", target=f"< {RSS_LIMIT_MB:.0f} MB", ok=first.max_rss_mb < RSS_LIMIT_MB
    )
    figures.add(
        f"{tag}.nochange_sync_wall", again.wall_s, "s", target="seconds (< 10 s)", ok=again.code == 0 and again.wall_s < 10
    )
    figures.add(
        f"{tag}.nochange_sync_rss", again.max_rss_mb, "MB", target=f"< {RSS_LIMIT_MB:.0f} MB", ok=again.max_rss_mb < RSS_LIMIT_MB
    )
    figures.add(f"{tag}.nochange_sync_writes", writes, "requests (token excluded)", target="0", ok=writes == 0)
    figures.add(f"{tag}.plan_wall", plan.wall_s, "s", target="seconds (< 10 s)", ok=plan.code == 0 and plan.wall_s < 10)
    figures.add(f"{tag}.plan_rss", plan.max_rss_mb, "MB", target=f"< {RSS_LIMIT_MB:.0f} MB", ok=plan.max_rss_mb < RSS_LIMIT_MB)


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
