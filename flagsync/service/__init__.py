"""The sync service: read both sides, plan with the pure core, apply the plan, record the outcome.

`sync.SyncService` runs plans and syncs; `report` is what a run did; `writers` is the pool that
carries out a run's writes; `audit` writes the run's audit trail as it goes.
"""

from flagsync.service.audit import AUDIT_BATCH, AUDIT_FLUSH_SECONDS, MAX_UNAUDITED, AuditBuffer
from flagsync.service.report import ChangeResult, Phase, ProgressFn, RunReport
from flagsync.service.sync import SyncService

__all__ = [
    "AUDIT_BATCH",
    "AUDIT_FLUSH_SECONDS",
    "MAX_UNAUDITED",
    "AuditBuffer",
    "ChangeResult",
    "Phase",
    "ProgressFn",
    "RunReport",
    "SyncService",
]
