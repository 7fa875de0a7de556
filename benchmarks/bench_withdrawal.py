"""Target 2: withdrawal → flag gone from One, in daemon mode (`flagsync daemon` subprocess).

The daemon converges on the people first; then withdrawals (a newer 'withdrawn' row, recorded and
updated now) are written at spread-out random moments, and the mock is polled every 0.2 s for each
flag's disappearance. Latency is from the row's commit to the first poll that no longer sees the
flag (so it is up to 0.2 s pessimistic).
"""

from __future__ import annotations

import random
import time

import benchlib
from benchlib import Figures

POLL_SECONDS = 0.2
TARGET_P95 = 60.0


def measure(people: int, withdrawals: int, span: float, poll_interval: float | None) -> list[float]:
    """Latencies (s) of `withdrawals` withdrawals over `span` s; the daemon polls every `poll_interval` s (None: default)."""
    rng = random.Random(7)
    chosen = rng.sample(range(people), withdrawals)
    offsets = sorted(rng.uniform(0, span) for _ in chosen)
    sync = {} if poll_interval is None else {"change_poll_interval": poll_interval}
    with benchlib.mock_and_workspace(people=people) as (mock, ws):
        ws.write_config(sync=sync)
        daemon = ws.start("daemon")
        try:
            deadline = time.monotonic() + 120
            while len(mock.active_flags()) < people:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not converge")
                time.sleep(0.5)
            started = time.monotonic()
            withdrawn_at: dict[str, float] = {}
            latencies: dict[str, float] = {}
            pending = list(zip(offsets, chosen, strict=True))
            deadline = started + span + 3 * (poll_interval or 30.0) + 60
            while len(latencies) < withdrawals and time.monotonic() < deadline:
                now = time.monotonic()
                while pending and pending[0][0] <= now - started:
                    _, who = pending.pop(0)
                    benchlib.record_decision(ws.consent_db, who, "withdrawn", tag=f"w-{who}")
                    withdrawn_at[benchlib.person_id(who)] = time.monotonic()
                flags = mock.active_flags()
                seen = time.monotonic()
                for pid, at in withdrawn_at.items():
                    if pid not in latencies and pid not in flags:
                        latencies[pid] = seen - at
                time.sleep(POLL_SECONDS)
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        finally:
            benchlib.stop_process(daemon)
    missing = withdrawals - len(latencies)
    if missing:
        print(f"  {missing} flags were still in One at the deadline")
    return sorted(latencies.values()) + [float("inf")] * missing


def report(figures: Figures, label: str, latencies: list[float], target: float) -> None:
    print(f"  {label}: latencies {', '.join(f'{x:.1f}' for x in latencies)} s")
    p95 = benchlib.percentile(latencies, 95)
    figures.add(f"{label}.n", len(latencies), "withdrawals")
    figures.add(f"{label}.p50", benchlib.percentile(latencies, 50), "s")
    figures.add(f"{label}.p95", p95, "s", target=f"<= {target:.0f} s", ok=p95 <= target)
    figures.add(f"{label}.max", max(latencies), "s")


def run(figures: Figures, *, quick: bool = False) -> None:
    if not quick:
        report(figures, "withdrawal.poll_30s", measure(200, 16, 150.0, None), TARGET_P95)
    report(figures, "withdrawal.poll_5s", measure(200, 8 if quick else 16, 20.0 if quick else 40.0, 5.0), TARGET_P95)


if __name__ == "__main__":
    benchlib.main_for(run, (__doc__ or "").splitlines()[0])
