"""The audit trail of one run, written as its changes are confirmed (small batches), so an interrupted run keeps it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from flagsync.ports import AuditEntry, AuditTrail

#: Confirmed changes are written to the audit trail at least this often, and in batches of at most this many.
AUDIT_FLUSH_SECONDS = 1.0
AUDIT_BATCH = 100

#: At most this many confirmed changes may be waiting for the audit trail: writers wait for the trail to
#: catch up, so that a state store that stops taking writes (a full disk) also stops the changes to One.
MAX_UNAUDITED = 2 * AUDIT_BATCH


class AuditBuffer:
    """Audit events of one run, written to the state store in small batches as they come.

    A batch is written when it reaches `AUDIT_BATCH` events or `AUDIT_FLUSH_SECONDS` after the last
    write, and at the end; so a run stopped by a signal, or a process killed, loses at most the
    last second of its audit trail, never all of it. A failure to write (a full disk) raises, which
    stops the run's further writes: no change is made that cannot be audited.
    """

    def __init__(self, state: AuditTrail, run_id: str, clock: Callable[[], datetime]) -> None:
        self._state = state
        self._run_id = run_id
        self._clock = clock
        self._rows: list[AuditEntry] = []
        self._counted = 0
        self._written_at = time.monotonic()
        #: Told how many `counted` rows each successful write carried (the writers' slots to give back).
        self.on_written: Callable[[int], None] = lambda _n: None

    def add(self, row: AuditEntry, *, counted: bool = False) -> None:
        self._rows.append(row)
        self._counted += counted
        if len(self._rows) >= AUDIT_BATCH or time.monotonic() - self._written_at >= AUDIT_FLUSH_SECONDS:
            self.flush()

    def extend(self, rows: Iterable[AuditEntry]) -> None:
        for row in rows:
            self.add(row)

    def flush(self) -> None:
        rows, counted = self._rows, self._counted
        self._rows, self._counted = [], 0
        self._written_at = time.monotonic()
        if rows:
            self._state.record_events(self._run_id, rows, self._clock())
        if counted:
            self.on_written(counted)
