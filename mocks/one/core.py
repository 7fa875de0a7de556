"""MockCore: One's rules (tokens, people, involvements, idempotency, page tokens) over the mock's state, behind one lock."""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mocks.one.errors import ApiError
from mocks.one.faults import FaultDecision, FaultInjector
from mocks.one.journal import Journal, JournalPage, JournalQuery, JournalRecord
from mocks.one.persistence import StateFileWriter, read_state_file
from mocks.one.schemas import FaultConfig, FaultRule, FaultSettings, PersonSeed
from mocks.one.store import IdempotencyRecord, Store, StoredInvolvement, format_involvement_id, parse_involvement_id

Clock = Callable[[], float]

PERSON_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,64}")
ALL_SCOPES = frozenset({"involvements.read", "involvements.write"})
PAGE_TOKEN_TTL_SECONDS = 600.0
MAX_PAGE_TOKEN_LENGTH = 512


def involvement_type_for(team: str) -> str:
    """Return the one involvement type a service team may create: `<TEAM>_WORKING_WITH_FAMILY`."""
    return f"{team}_WORKING_WITH_FAMILY"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class ClientCredential:
    """A client the token endpoint accepts, and the service team it acts for."""

    client_id: str
    secret: str
    team: str


@dataclass(frozen=True)
class Principal:
    """Who a valid bearer token speaks for."""

    client_id: str
    team: str
    scopes: frozenset[str]


@dataclass
class _Token:
    principal: Principal
    issued_at: float


@dataclass(frozen=True)
class CreateOutcome:
    """The resource a create answered with, and whether it was an idempotent replay."""

    resource: dict[str, Any]
    replayed: bool


class MockCore:
    """All mock state and behaviour, safe to call from many threads and from the event loop (one short-held lock)."""

    def __init__(
        self,
        *,
        clients: Iterable[ClientCredential],
        any_person: bool = False,
        state_file: Path | None = None,
        seed: int = 0,
        clock: Clock = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._clients = {client.client_id: client for client in clients}
        self.any_person = any_person
        self._data = Store()
        self._tokens: dict[str, _Token] = {}
        self._page_key = secrets.token_bytes(32)
        self._faults = FaultInjector(seed=seed, clock=clock)
        self._journal = Journal()
        self._writer: StateFileWriter | None = None
        if state_file is not None:
            loaded = read_state_file(state_file)
            if loaded is not None:
                self._data = Store.from_snapshot(loaded)
            self._writer = StateFileWriter(state_file, self._snapshot_for_file)

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Flush the state file (if any) and stop its writer thread."""
        if self._writer is not None:
            self._writer.close()

    def _changed(self) -> None:
        if self._writer is not None:
            self._writer.mark_dirty()

    def _snapshot_for_file(self) -> dict[str, Any]:
        with self._lock:
            return self._data.snapshot()

    # ----------------------------------------------------------------- tokens

    def client(self, client_id: str) -> ClientCredential | None:
        """Return the configured client with this id, or None."""
        return self._clients.get(client_id)

    def issue_token(self, client: ClientCredential, scopes: frozenset[str]) -> tuple[str, int]:
        """Issue a bearer token for `client`; return it and its lifetime in seconds."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            ttl = self._faults.config.tokenTtlSeconds
            if len(self._tokens) > 10_000:
                self._tokens = {k: v for k, v in self._tokens.items() if now - v.issued_at < ttl}
            self._tokens[token] = _Token(Principal(client.client_id, client.team, scopes), now)
        return token, ttl

    def authenticate(self, authorization: str | None, scope: str) -> Principal:
        """Return the principal behind an `Authorization` header, or raise the 401/403 the contract prescribes."""
        invalid = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        if not authorization:
            raise ApiError(401, "TOKEN_MISSING", headers={"WWW-Authenticate": 'Bearer realm="one"'})
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise ApiError(401, "TOKEN_MISSING", headers={"WWW-Authenticate": 'Bearer realm="one"'})
        with self._lock:
            found = self._tokens.get(token.strip())
            ttl = self._faults.config.tokenTtlSeconds
            now = self._clock()
        if found is None:
            raise ApiError(401, "TOKEN_INVALID", headers=invalid)
        if now - found.issued_at >= ttl:
            raise ApiError(401, "TOKEN_EXPIRED", headers=invalid)
        if scope not in found.principal.scopes:
            raise ApiError(403, "SCOPE_INSUFFICIENT", headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
        return found.principal

    # ----------------------------------------------------------------- people

    def _person_check(self, person_id: str) -> None:
        """Raise the error the person's state calls for; return quietly for an active person."""
        person = self._data.people.get(person_id)
        if person is None:
            if self.any_person and PERSON_ID_RE.fullmatch(person_id):
                return
            raise ApiError(404, "PERSON_NOT_FOUND")
        if person.state == "archived":
            raise ApiError(410, "PERSON_ARCHIVED")
        if person.state == "restricted":
            raise ApiError(403, "RECORD_RESTRICTED")
        if person.state == "merged":
            details = {"successorPersonId": person.successorPersonId} if person.successorPersonId else {}
            raise ApiError(409, "PERSON_MERGED", details=details)

    def seed_people(self, people: Iterable[PersonSeed]) -> int:
        """Add or replace people; return how many were given."""
        count = 0
        with self._lock:
            for person in people:
                self._data.people[person.personId] = person
                count += 1
        self._changed()
        return count

    def people(self) -> list[PersonSeed]:
        """Return every seeded person, in seeding order."""
        with self._lock:
            return list(self._data.people.values())

    def teams(self) -> list[str]:
        """Return the service teams of the configured clients ("ours" for some client), the first client's first."""
        return list(dict.fromkeys(client.team for client in self._clients.values()))

    # ----------------------------------------------------------------- the One API

    def create(self, principal: Principal, person_id: str, involvement_type: str, key: str, fingerprint: str) -> CreateOutcome:
        """Create the caller's involvement for a person, honouring the Idempotency-Key."""
        with self._lock:
            data = self._data
            stored = data.idempotency.get((principal.client_id, key))
            if stored is not None:
                if not hmac.compare_digest(stored.fingerprint, fingerprint):
                    raise ApiError(422, "IDEMPOTENCY_KEY_REUSED")
                if stored.duplicate_of is not None:
                    raise ApiError(409, "DUPLICATE_ACTIVE_INVOLVEMENT", details={"existingInvolvementId": stored.duplicate_of})
                return CreateOutcome(stored.resource, replayed=True)
            if involvement_type != involvement_type_for(principal.team):
                raise ApiError(422, "INVALID_INVOLVEMENT_TYPE")
            self._person_check(person_id)
            for number in data.by_person.get(person_id, ()):
                existing = data.involvements[number]
                ours = existing.team == principal.team and existing.involvement_type == involvement_type
                if ours and existing.status == "active":
                    # The 409 is the original answer too: a replay of this key must not create a flag later.
                    duplicate_of = format_involvement_id(number)
                    data.idempotency[(principal.client_id, key)] = IdempotencyRecord(fingerprint, {}, duplicate_of)
                    self._changed()  # only signals the state-file writer, which takes the lock after we leave
                    raise ApiError(409, "DUPLICATE_ACTIVE_INVOLVEMENT", details={"existingInvolvementId": duplicate_of})
            inv = self._new_involvement(person_id, principal.team, involvement_type, "active")
            resource = inv.view()
            data.idempotency[(principal.client_id, key)] = IdempotencyRecord(fingerprint, resource)
        self._changed()
        return CreateOutcome(resource, replayed=False)

    def _new_involvement(self, person_id: str, team: str, involvement_type: str, status: str) -> StoredInvolvement:
        now = self._clock()
        data = self._data
        inv = StoredInvolvement(
            number=data.next_number,
            person_id=person_id,
            team=team,
            involvement_type=involvement_type,
            status=status,
            start_date=_date(now),
            last_updated=_iso(now),
            version=1,
            listed_from=now + self._faults.config.listingDelaySeconds,
        )
        data.next_number += 1
        data.insert(inv)
        return inv

    def list_ours(
        self, principal: Principal, status: str | None, page_size: int, page_token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page of the caller's team's involvements, ordered by id, and the next page token."""
        with self._lock:
            now = self._clock()
            after = self._read_page_token(page_token, principal.team, status, now) if page_token else 0
            data = self._data
            start = bisect.bisect_right(data.numbers, after)
            items: list[dict[str, Any]] = []
            last = after
            more = False
            for number in data.numbers[start:]:
                inv = data.involvements[number]
                if inv.team != principal.team:
                    continue
                shown = inv.listed_view(now)
                if shown is None or (status is not None and shown["status"] != status):
                    continue
                if len(items) == page_size:
                    more = True
                    break
                items.append(shown)
                last = number
            next_token = self._make_page_token(last, principal.team, status, now) if more else None
        return items, next_token

    def list_person(self, principal: Principal, person_id: str, status: str | None) -> list[dict[str, Any]]:
        """Return the caller's team's involvements for one person, ordered by id."""
        with self._lock:
            self._person_check(person_id)
            now = self._clock()
            items = []
            for number in sorted(self._data.by_person.get(person_id, ())):
                inv = self._data.involvements[number]
                shown = inv.listed_view(now) if inv.team == principal.team else None
                if shown is not None and (status is None or shown["status"] == status):
                    items.append(shown)
        return items

    def get(self, principal: Principal, involvement_id: str) -> dict[str, Any]:
        """Return one of the caller's team's involvements (any status)."""
        with self._lock:
            inv = self._find(involvement_id)
            if inv.team != principal.team:
                raise ApiError(403, "SERVICE_TEAM_NOT_PERMITTED")
            return inv.view()

    def delete(self, principal: Principal, involvement_id: str, if_match: str | None) -> None:
        """Mark one of the caller's team's active involvements removed, if `If-Match` names its current version."""
        with self._lock:
            inv = self._find(involvement_id)
            if inv.status != "active":
                raise ApiError(404, "INVOLVEMENT_NOT_FOUND")
            if inv.team != principal.team:
                raise ApiError(403, "SERVICE_TEAM_NOT_PERMITTED")
            if if_match is None or not if_match.strip():
                raise ApiError(428, "PRECONDITION_REQUIRED")
            if not _etag_matches(if_match, inv.version):
                raise ApiError(412, "PRECONDITION_FAILED", details={"currentVersion": inv.version})
            self._remove(inv)
        self._changed()

    def _find(self, involvement_id: str) -> StoredInvolvement:
        number = parse_involvement_id(involvement_id)
        inv = self._data.involvements.get(number) if number is not None else None
        if inv is None:
            raise ApiError(404, "INVOLVEMENT_NOT_FOUND")
        return inv

    def _remove(self, inv: StoredInvolvement) -> None:
        now = self._clock()
        delay = self._faults.config.listingDelaySeconds
        if delay > 0:
            inv.stale_view = inv.view()
            inv.stale_until = now + delay
        inv.status = "removed"
        inv.version += 1
        inv.last_updated = _iso(now)

    # ----------------------------------------------------------------- page tokens

    def _make_page_token(self, after: int, team: str, status: str | None, now: float) -> str:
        payload = base64.urlsafe_b64encode(json.dumps([after, round(now, 3), team, status]).encode()).decode().rstrip("=")
        mac = hmac.new(self._page_key, payload.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{payload}.{mac}"

    def _read_page_token(self, token: str, team: str, status: str | None, now: float) -> int:
        invalid = ApiError(400, "INVALID_PAGE_TOKEN")
        payload, _, mac = token.rpartition(".")
        if len(token) > MAX_PAGE_TOKEN_LENGTH or not payload:
            raise invalid
        expected = hmac.new(self._page_key, payload.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(expected, mac):
            raise invalid
        after, issued, token_team, token_status = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if token_team != team or token_status != status or not 0 <= now - float(issued) <= PAGE_TOKEN_TTL_SECONDS:
            raise invalid
        return int(after)

    # ----------------------------------------------------------------- control plane

    def reset(self) -> None:
        """Forget people, involvements, idempotency keys, the journal and faults (tokens stay valid)."""
        with self._lock:
            self._data = Store()
            self._faults.reset()
            self._journal.clear()
            self._page_key = secrets.token_bytes(32)
        self._changed()

    def all_involvements(self) -> list[dict[str, Any]]:
        """Return every stored involvement of every team and status, ordered by id."""
        with self._lock:
            return [self._data.involvements[number].view() for number in self._data.numbers]

    def add_direct(self, person_id: str, team: str, involvement_type: str | None, status: str) -> dict[str, Any]:
        """Store an involvement as if made by hand in One (no duplicate check); an unknown person is seeded as active."""
        with self._lock:
            if person_id not in self._data.people:
                self._data.people[person_id] = PersonSeed(personId=person_id)
            inv = self._new_involvement(person_id, team, involvement_type or involvement_type_for(team), status)
            view = inv.view()
        self._changed()
        return view

    def remove_direct(self, involvement_id: str) -> None:
        """Mark an involvement removed as if done by hand in One, whatever its team or version."""
        with self._lock:
            inv = self._find(involvement_id)
            if inv.status == "active":
                self._remove(inv)
        self._changed()

    # ----------------------------------------------------------------- faults (FaultInjector)

    def set_faults(self, config: FaultConfig) -> None:
        """Replace the fault configuration; the random sequence restarts from its seed."""
        with self._lock:
            self._faults.replace(config)

    def add_fault_rule(self, rule: FaultRule) -> int:
        """Append one rule after the others, which keep their counters; return its id."""
        with self._lock:
            return self._faults.add_rule(rule)

    def remove_fault_rule(self, rule_id: int) -> None:
        """Remove one rule by id (the others keep their counters), or raise 404 FAULT_RULE_NOT_FOUND."""
        with self._lock:
            self._faults.remove_rule(rule_id)

    def update_fault_settings(self, settings: FaultSettings) -> None:
        """Change the settings `settings` names (its fields set), keeping every rule and its counters."""
        with self._lock:
            self._faults.update_settings(settings)

    def fault_state(self) -> dict[str, Any]:
        """Return the active fault configuration with per-rule counters."""
        with self._lock:
            return self._faults.state()

    def take_rate_token(self) -> int | None:
        """Spend one rate-limit token; return None if allowed, else the whole seconds to wait."""
        with self._lock:
            return self._faults.take_rate_token()

    def decide_fault(self, method: str, path: str) -> FaultDecision | None:
        """Return the first matching rule that fires for this request (consuming one of its `times`), or None."""
        with self._lock:
            return self._faults.decide(method, path)

    # ----------------------------------------------------------------- journal (Journal)

    def journal_start(
        self, *, method: str, path: str, query: str, headers: dict[str, str], body: str, correlation_id: str
    ) -> JournalRecord:
        """Append a journal record for a request as it arrives and return it (for the status to be filled in)."""
        with self._lock:
            return self._journal.start(
                _iso(self._clock()),
                method=method,
                path=path,
                query=query,
                headers=headers,
                body=body,
                correlation_id=correlation_id,
            )

    def journal(self, limit: int | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Return journal records after `since`, oldest first, at most the latest `limit`."""
        return self.journal_page(JournalQuery(since=since, limit=limit)).items

    def journal_page(self, query: JournalQuery) -> JournalPage:
        """Return the latest `query.limit` records matching `query`, oldest first, with the cursors around them."""
        with self._lock:
            return self._journal.page(query)


def _etag_matches(if_match: str, version: int) -> bool:
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/")
        if tag == f'"{version}"':
            return True
    return False
