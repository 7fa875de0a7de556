"""`flagsync audit --events` and `--verify` for the operator: event rows (pseudonyms), and the chain's verdict."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import IO

from flagsync.ports import AuditEvent, ChainCheck

_EVENT_HEADERS = ["at", "run_id", "action", "person", "outcome", "reason", "key_id"]


def render_events(events: Sequence[AuditEvent], fmt: str) -> str:
    """Event rows as CSV or JSON. Not an aggregate: they carry pseudonyms, not counts, so nothing is suppressed."""
    rows = [[e.at.isoformat(), e.run_id, e.action, e.person or "", e.outcome, e.reason or "", e.key_id] for e in events]
    if fmt == "json":
        return json.dumps([dict(zip(_EVENT_HEADERS, row, strict=True)) for row in rows], indent=2) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_EVENT_HEADERS)
    writer.writerows(rows)
    return out.getvalue()


def print_verification(check: ChainCheck, out: IO[str]) -> bool:
    """Print the verdict on the audit chain (the first broken link by event id and time only); return whether intact."""
    if check.broken is None:
        span = f"events {check.first_id} to {check.last_id}" if check.events else "no events (all purged, or none yet)"
        keys = f", signed with key {', '.join(check.key_ids)}" if check.key_ids else ""
        out.write(f"audit trail intact: {check.events} events checked ({span}){keys}\n")
        return True
    broken = check.broken
    where = f"event {broken.event_id}" if broken.event_id is not None else "the chain records"
    if broken.at is not None:
        where += f" ({broken.at.strftime('%Y-%m-%d %H:%M:%S')} UTC)"
    out.write(f"audit trail BROKEN at {where}: {broken.problem}\n")
    out.write(f"{check.events} events before it verified.\n")
    return False
