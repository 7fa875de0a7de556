"""The request journal: every One API request received, its answer's status, and the queries that page through it."""

from __future__ import annotations

import collections
import fnmatch
from dataclasses import dataclass, replace
from typing import Any

#: The most records the journal keeps (the oldest are forgotten first).
JOURNAL_CAPACITY = 10_000


@dataclass
class JournalRecord:
    """One received request; `status` is filled in when the answer starts."""

    seq: int
    time: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    correlation_id: str
    status: int | None = None
    error_code: str | None = None
    dropped: bool = False
    injected_fault: bool = False
    fault_rule: int | None = None
    rate_limited: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "body": self.body,
            "status": self.status,
            "errorCode": self.error_code,
            "correlationId": self.correlation_id,
            "dropped": self.dropped,
            "injectedFault": self.injected_fault,
            "faultRule": self.fault_rule,
            "rateLimited": self.rate_limited,
        }

    def matches(self, query: JournalQuery) -> bool:
        """Whether this record passes every filter of `query` (the seq bounds included)."""
        if not query.since < self.seq or (query.before is not None and self.seq >= query.before):
            return False
        if query.method is not None and self.method.upper() != query.method:
            return False
        if query.path is not None and not fnmatch.fnmatchcase(self.path, query.path):
            return False
        if query.injected is not None and self.injected_fault != query.injected:
            return False
        if query.idempotency_key is not None and self.headers.get("idempotency-key") != query.idempotency_key:
            return False
        return query.status is None or _status_matches(query.status, self.status, self.dropped)


def _status_matches(wanted: str, status: int | None, dropped: bool) -> bool:
    if wanted == "dropped":
        return dropped
    if status is None:
        return False
    if wanted.endswith("xx"):
        return str(status)[0] == wanted[0]
    return str(status) == wanted


@dataclass(frozen=True)
class JournalQuery:
    """Which journal records to return: filters, seq bounds (since < seq < before) and at most the latest `limit`."""

    since: int = 0
    before: int | None = None
    limit: int | None = None
    method: str | None = None
    #: An exact status ("503"), a class ("5xx") or "dropped".
    status: str | None = None
    #: An fnmatch-style glob on the path, as in fault rules.
    path: str | None = None
    injected: bool | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class JournalPage:
    """The latest `limit` matching records (oldest first) and the cursors to the pages around them."""

    items: list[dict[str, Any]]
    matched: int
    #: `before` for the next older page, or None.
    older_before: int | None
    #: Whether newer matching records exist (the page is not the latest).
    has_newer: bool
    #: `before` for the next newer page; None with has_newer means the newer page is the latest.
    newer_before: int | None


class Journal:
    """The latest JOURNAL_CAPACITY records, numbered from 1 on (the numbers run on across a `clear`).

    Not thread-safe on its own: MockCore calls it under the lock that guards all the mock's state.
    """

    def __init__(self) -> None:
        self._records: collections.deque[JournalRecord] = collections.deque(maxlen=JOURNAL_CAPACITY)
        self._seq = 0

    def clear(self) -> None:
        """Forget every record (the next one still gets the next number)."""
        self._records.clear()

    def start(
        self, time: str, *, method: str, path: str, query: str, headers: dict[str, str], body: str, correlation_id: str
    ) -> JournalRecord:
        """Append a record for a request as it arrives and return it (for the status to be filled in)."""
        self._seq += 1
        record = JournalRecord(self._seq, time, method, path, query, headers, body, correlation_id)
        self._records.append(record)
        return record

    def page(self, query: JournalQuery) -> JournalPage:
        """Return the latest `query.limit` records matching `query`, oldest first, with the cursors around them."""
        unbounded = replace(query, before=None)
        matching = [record for record in self._records if record.matches(query)]
        newer = [] if query.before is None else [r for r in self._records if r.seq >= query.before and r.matches(unbounded)]
        shown = matching if query.limit is None else matching[-query.limit :]
        items = [record.view() for record in shown]
        older_before = shown[0].seq if shown and len(shown) < len(matching) else None
        newer_before = None
        if query.limit is not None and len(newer) > query.limit:
            newer_before = newer[query.limit].seq
        return JournalPage(items, len(matching), older_before, bool(newer), newer_before)
