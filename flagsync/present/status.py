"""`flagsync status` for a person at a terminal, or as one JSON document: runs, stored removals, what needs a person."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from flagsync.present.terminal import table
from flagsync.service.status import Status

_REPORT_SECTIONS = (
    ("quarantined", "Quarantined records"),
    ("unmatched", "Unmatched records"),
    ("attention", "Needs attention"),
    ("person_issue", "People One will not flag"),
)


def status_document(status: Status, *, store_exists: bool) -> dict[str, Any]:
    return {
        "runs": [
            {
                "runId": r.run_id,
                "trigger": r.trigger.value,
                "startedAt": r.started_at.isoformat(),
                "finishedAt": r.finished_at.isoformat() if r.finished_at else None,
                "outcome": r.outcome.value if r.outcome else status.unfinished,
                "counts": dict(r.counts),
            }
            for r in status.runs
        ],
        "nextFullReconcileDue": status.next_full_due.isoformat() if status.next_full_due else None,
        "pendingRemovals": [
            {
                "involvementId": p.involvement_id,
                "person": p.person,
                "since": p.since.isoformat(),
                "attempts": p.attempts,
                "held": p.held,
                "keyId": p.key_id,
            }
            for p in status.pending
        ],
        "report": [{"kind": r.kind, "subject": r.subject, "reason": r.reason, "keyId": r.key_id} for r in status.report],
        "stateStoreExists": store_exists,
    }


def print_status(status: Status, out: IO[str], *, store_exists: bool, store_where: str) -> None:
    current = status.current_key_id
    out.write("Recent runs:\n")
    if status.runs:
        table(
            [
                [
                    r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                    r.trigger.value,
                    r.outcome.value if r.outcome else status.unfinished,
                    _counts_summary(r.counts),
                ]
                for r in status.runs
            ],
            ["started (UTC)", "trigger", "outcome", "counts"],
            out,
        )
    else:
        out.write("  (no runs yet)\n")
        if not store_exists:
            out.write(f"  (no state store at {store_where} yet: no run has written to it)\n")
    due = status.next_full_due.strftime("%Y-%m-%d %H:%M:%S UTC") if status.next_full_due else "at daemon start"
    out.write(f"\nNext full reconcile due: {due}\n")
    out.write(f"\nPending removals (retried every cycle): {len(status.waiting)}\n")
    if status.waiting:
        table(
            [
                [p.involvement_id, _pseudonym(p.person, p.key_id, current), p.attempts, p.since.strftime("%Y-%m-%d %H:%M")]
                for p in status.waiting
            ],
            ["involvement", "person (pseudonym)", "attempts", "since"],
            out,
        )
    out.write(f"\nHeld removals (release with: flagsync sync --allow-mass-removal): {len(status.held)}\n")
    if status.held:
        table(
            [
                [p.involvement_id, _pseudonym(p.person, p.key_id, current), p.since.strftime("%Y-%m-%d %H:%M")]
                for p in status.held
            ],
            ["involvement", "person (pseudonym)", "since"],
            out,
        )
    for kind, title in _REPORT_SECTIONS:
        rows = [r for r in status.report if r.kind == kind]
        out.write(f"\n{title} (last full run): {len(rows)}\n")
        if rows:
            table([[_pseudonym(r.subject, r.key_id, current), r.reason] for r in rows], ["pseudonym", "reason"], out)
    if status.report:
        out.write("\nPseudonyms keep ids out of the state store; `flagsync plan` shows the ids themselves.\n")


def _pseudonym(pseudonym: str, key_id: str, current_key: str) -> str:
    """A pseudonym as stored; one made with a key since rotated away says which key (logs use the current one)."""
    return pseudonym if key_id == current_key else f"{pseudonym} (key {key_id})"


def _counts_summary(counts: Mapping[str, int]) -> str:
    keys = ("adds", "removes", "held", "failed", "skipped", "quarantined")
    return ", ".join(f"{k} {counts.get(k, 0)}" for k in keys if counts.get(k))
