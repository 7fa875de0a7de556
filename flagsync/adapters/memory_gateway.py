"""A thread-safe in-memory stand-in for One that implements `FlagGateway` with One's semantics, for tests."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal, TypeVar

from flagsync.adapters.one import wire
from flagsync.adapters.one.wire import PERSON_INVOLVEMENTS
from flagsync.core.model import Flag
from flagsync.errors import ContractViolation, PersonIssue, PersonUnavailable, RemoteError, RunInterrupted
from flagsync.ports import CreateOutcome, PageProbe

PersonState = Literal["active", "archived", "restricted", "merged"]
Operation = Literal["list_flags", "person_flags", "create_flag", "remove_flag", "probe"]

#: What One answers for a person who is not active (status, issue), as in docs/one-api.md.
_UNAVAILABLE: dict[str, tuple[int, PersonIssue]] = {
    "archived": (410, PersonIssue.PERSON_ARCHIVED),
    "restricted": (403, PersonIssue.RECORD_RESTRICTED),
    "merged": (409, PersonIssue.PERSON_MERGED),
    "unknown": (404, PersonIssue.PERSON_NOT_FOUND),
}

_T = TypeVar("_T")


@dataclass
class _Fault:
    remaining: int
    error: RemoteError
    operation: Operation | None
    after_commit: bool


class InMemoryFlagGateway:
    """Our flags in One, held in a dict, with One's answers for people, duplicates, replays and versions.

    Injected faults (`fail_next`) escape as they are, as if the real gateway had spent its retry budget.
    """

    def __init__(self, *, any_person: bool = False) -> None:
        """`any_person`: every well-formed id is an active person (the mock server's --any-person)."""
        self._any_person = any_person
        self._lock = threading.RLock()
        self._people: dict[str, str] = {}
        self._flags: dict[str, Flag] = {}
        self._replays: dict[str, tuple[str, CreateOutcome]] = {}
        self._faults: list[_Fault] = []
        self._next_id = 1
        #: How many times each protocol method was called (e.g. to check a steady state makes no writes).
        self.calls: Counter[str] = Counter()

    # ---- test helpers (One's side of the world)

    def add_person(self, person_id: str, state: PersonState = "active") -> None:
        with self._lock:
            self._people[person_id] = state

    def flags(self) -> list[Flag]:
        """Every flag of ours One holds now, in id order."""
        with self._lock:
            return sorted(self._flags.values())

    def add_flag_by_hand(self, person_id: str) -> Flag:
        """A flag of ours made directly in One (drift), even if the person already has one."""
        with self._lock:
            return self._store(person_id)

    def remove_by_hand(self, involvement_id: str) -> None:
        """A flag of ours removed directly in One (drift); unknown ids are ignored."""
        with self._lock:
            self._flags.pop(involvement_id, None)

    def touch_by_hand(self, involvement_id: str) -> Flag:
        """Someone edits the flag in One: its version goes up, so a removal holding the old version is stale."""
        with self._lock:
            old = self._flags[involvement_id]
            self._flags[involvement_id] = new = Flag(old.involvement_id, old.person_id, old.version + 1)
            return new

    def fail_next(self, n: int, error: RemoteError, *, operation: Operation | None = None, after_commit: bool = False) -> None:
        """The next `n` calls (of `operation`, or of any method) raise `error`; with `after_commit` the write happens first."""
        with self._lock:
            self._faults.append(_Fault(n, error, operation, after_commit))

    # ---- the FlagGateway protocol

    def list_flags(self, *, cancel: threading.Event | None = None) -> list[Flag]:
        with self._lock:
            fault = self._begin("list_flags")
            if cancel is not None and cancel.is_set():
                raise RunInterrupted("the listing was cancelled")
            return self._finish(fault, self.flags())

    def person_flags(self, person_id: str) -> list[Flag]:
        with self._lock:
            fault = self._begin("person_flags")
            self._check_person(person_id, PERSON_INVOLVEMENTS)
            return self._finish(fault, sorted(flag for flag in self._flags.values() if flag.person_id == person_id))

    def create_flag(self, person_id: str, idempotency_key: str) -> CreateOutcome:
        with self._lock:
            fault = self._begin("create_flag")
            wire.check_idempotency_key(idempotency_key)
            wire.person_path(person_id)
            replay = self._replays.get(idempotency_key)
            if replay is not None:
                if replay[0] != person_id:
                    raise ContractViolation(
                        "The Idempotency-Key was used for another request",
                        status=422,
                        code="IDEMPOTENCY_KEY_REUSED",
                        endpoint=PERSON_INVOLVEMENTS,
                    )
                return self._finish(fault, replay[1])
            self._check_person(person_id, PERSON_INVOLVEMENTS)
            if any(flag.person_id == person_id for flag in self._flags.values()):
                outcome = CreateOutcome.ALREADY_PRESENT
            else:
                self._store(person_id)
                outcome = CreateOutcome.CREATED
            self._replays[idempotency_key] = (person_id, outcome)
            return self._finish(fault, outcome)

    def remove_flag(self, flag: Flag) -> None:
        with self._lock:
            fault = self._begin("remove_flag")
            # A stale version means 412, a re-read and a retry: the end state is the same, the flag is gone.
            self._flags.pop(flag.involvement_id, None)
            self._finish(fault, None)

    def probe(self) -> PageProbe:
        with self._lock:
            fault = self._begin("probe")
            return self._finish(fault, PageProbe(items=min(1, len(self._flags)), more=len(self._flags) > 1))

    # ---- internals

    def _store(self, person_id: str) -> Flag:
        involvement_id = f"INV-{self._next_id:06d}"
        self._next_id += 1
        self._flags[involvement_id] = flag = Flag(involvement_id, person_id, 1)
        return flag

    def _begin(self, operation: Operation) -> _Fault | None:
        """Count the call and take the next matching fault; one injected before the write is raised now."""
        self.calls[operation] += 1
        for fault in self._faults:
            if fault.remaining > 0 and fault.operation in (None, operation):
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
                if not fault.after_commit:
                    raise copy.copy(fault.error)
                return fault
        return None

    @staticmethod
    def _finish(fault: _Fault | None, result: _T) -> _T:
        if fault is not None:
            raise copy.copy(fault.error)
        return result

    def _check_person(self, person_id: str, endpoint: str) -> None:
        wire.person_path(person_id)
        state = self._people.get(person_id, "active" if self._any_person else "unknown")
        if state != "active":
            status, issue = _UNAVAILABLE[state]
            raise PersonUnavailable(issue, status=status, endpoint=endpoint)
