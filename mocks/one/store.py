"""The mock's stored data (people, involvements, idempotency records) with its indexes, and its state-file form."""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mocks.one.schemas import PersonSeed

INVOLVEMENT_ID_RE = re.compile(r"INV-([0-9]{6,})")


def format_involvement_id(number: int) -> str:
    """Return the public id of involvement number `number`, e.g. INV-000042."""
    return f"INV-{number:06d}"


def parse_involvement_id(text: str) -> int | None:
    """Return the number inside a well-formed involvement id, or None."""
    match = INVOLVEMENT_ID_RE.fullmatch(text)
    return int(match.group(1)) if match else None


@dataclass
class StoredInvolvement:
    """One involvement as stored, with what listings show of it while writes reach them late."""

    number: int
    person_id: str
    team: str
    involvement_type: str
    status: str
    start_date: str
    last_updated: str
    version: int
    listed_from: float = 0.0
    stale_view: dict[str, Any] | None = None
    stale_until: float = 0.0

    def view(self) -> dict[str, Any]:
        return {
            "id": format_involvement_id(self.number),
            "personId": self.person_id,
            "serviceTeam": self.team,
            "involvementType": self.involvement_type,
            "status": self.status,
            "startDate": self.start_date,
            "lastUpdated": self.last_updated,
            "version": self.version,
        }

    def listed_view(self, now: float) -> dict[str, Any] | None:
        """What a listing shows at `now` when writes reach listings late; None while not yet listed."""
        if now < self.listed_from:
            return None
        if self.stale_view is not None and now < self.stale_until:
            return self.stale_view
        return self.view()


@dataclass(frozen=True)
class IdempotencyRecord:
    """The answer a client's Idempotency-Key was first given, and the request it was given for (by fingerprint)."""

    fingerprint: str
    resource: dict[str, Any]
    #: Set when the original answer was 409 DUPLICATE_ACTIVE_INVOLVEMENT: the id it named (a replay answers the same).
    duplicate_of: str | None = None


@dataclass
class Store:
    """People, involvements (by number, in order, and by person) and idempotency records.

    Not thread-safe on its own: MockCore reads and changes it under the lock that guards all the mock's state.
    """

    people: dict[str, PersonSeed] = field(default_factory=dict)
    involvements: dict[int, StoredInvolvement] = field(default_factory=dict)
    numbers: list[int] = field(default_factory=list)
    by_person: dict[str, list[int]] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    next_number: int = 1

    def insert(self, inv: StoredInvolvement) -> None:
        """Store a new involvement and index it."""
        self.involvements[inv.number] = inv
        bisect.insort(self.numbers, inv.number)
        self.by_person.setdefault(inv.person_id, []).append(inv.number)

    def snapshot(self) -> dict[str, Any]:
        """Return the state-file form of everything stored (format 1)."""
        return {
            "format": 1,
            "nextNumber": self.next_number,
            "people": [person.model_dump() for person in self.people.values()],
            "involvements": [inv.view() for inv in self.involvements.values()],
            "idempotency": [
                {
                    "clientId": client_id,
                    "key": key,
                    "fingerprint": record.fingerprint,
                    "resource": record.resource,
                    "duplicateOf": record.duplicate_of,
                }
                for (client_id, key), record in self.idempotency.items()
            ],
        }

    @classmethod
    def from_snapshot(cls, state: Mapping[str, Any]) -> Store:
        """Rebuild a store from its state-file form (involvements with a malformed id are skipped)."""
        data = cls()
        for raw in state.get("people", []):
            person = PersonSeed.model_validate(raw)
            data.people[person.personId] = person
        for raw in state.get("involvements", []):
            number = parse_involvement_id(str(raw["id"]))
            if number is None:
                continue
            inv = StoredInvolvement(
                number=number,
                person_id=str(raw["personId"]),
                team=str(raw["serviceTeam"]),
                involvement_type=str(raw["involvementType"]),
                status=str(raw["status"]),
                start_date=str(raw["startDate"]),
                last_updated=str(raw["lastUpdated"]),
                version=int(raw["version"]),
            )
            data.insert(inv)
        for raw in state.get("idempotency", []):
            duplicate_of = raw.get("duplicateOf")
            record = IdempotencyRecord(
                str(raw["fingerprint"]), dict(raw["resource"]), str(duplicate_of) if duplicate_of else None
            )
            data.idempotency[(str(raw["clientId"]), str(raw["key"]))] = record
        data.next_number = max(int(state.get("nextNumber", 1)), (data.numbers[-1] + 1) if data.numbers else 1)
        return data
