"""The audit trail's hash chain: how an event is signed into it, and how a whole trail is checked. Pure: no I/O.

Each event's `chain_hash` is HMAC-SHA256, under the chain key derived from the pseudonym key that
was current when it was written (named by the event's `key_id`), of the previous event's hash and
this event's canonical form (its id, time, day, run, action, pseudonym, outcome, reason and key
id). Editing any field, removing an event or inserting one breaks the link of that event or the
next; without the key, no one can make a link that verifies. Two signed records bound the chain:
the anchor (what the first kept event follows: `GENESIS`, or the last purged event's hash) and
the head (the last event appended), so that cutting events off either end is seen too.

The hash covers the pseudonym, never a raw id: it tells no more about a person than the
pseudonym already does, and nothing at all without the key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from flagsync.core.pseudonym import Keyring, Pseudonymizer
from flagsync.ports import BrokenLink, ChainCheck

#: What the very first event follows.
GENESIS = "0" * 64

#: Versions the canonical form; a change of form is a new label (and a migration that re-signs).
_FORM = "flagsync-audit-v1"

HEAD = "head"
ANCHOR = "anchor"


@dataclass(frozen=True, slots=True)
class ChainRow:
    """An audit event exactly as stored: what is signed, and its stored hash."""

    event_id: int
    at: datetime
    day: str
    run_id: str
    action: str
    person: str | None
    outcome: str
    reason: str | None
    key_id: str
    chain_hash: str


@dataclass(frozen=True, slots=True)
class Marker:
    """The chain's head or anchor record: an event id, a hash, and the key that signed the record."""

    name: str
    event_id: int
    hash: str
    key_id: str
    mac: str


def canonical(row: ChainRow) -> bytes:
    """The bytes an event's link signs: every stored field but the hash, in a fixed order and form."""
    at = row.at.astimezone(UTC).isoformat(timespec="microseconds")
    fields = [_FORM, row.event_id, at, row.day, row.run_id, row.action, row.person, row.outcome, row.reason, row.key_id]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def link(key: Pseudonymizer, previous_hash: str, row: ChainRow) -> str:
    """The chain hash of `row` following `previous_hash`, signed with `key` (its chain key, not the key itself)."""
    return key.chain_mac(previous_hash.encode("ascii") + b"\n" + canonical(row))


def sign_marker(key: Pseudonymizer, name: str, event_id: int, hash_: str) -> Marker:
    return Marker(name, event_id, hash_, key.key_id, _marker_mac(key, name, event_id, hash_))


def _marker_mac(key: Pseudonymizer, name: str, event_id: int, hash_: str) -> str:
    return key.chain_mac(json.dumps([_FORM, name, event_id, hash_, key.key_id], separators=(",", ":")).encode("ascii"))


def _marker_problem(keys: Keyring, marker: Marker | None, name: str) -> str | None:
    if marker is None:
        return f"the chain's {name} record is missing"
    key = keys.get(marker.key_id)
    if key is None:
        return f"the chain's {name} record is signed with key id {marker.key_id}, which is not configured"
    if marker.mac != _marker_mac(key, name, marker.event_id, marker.hash):
        return f"the chain's {name} record has been altered"
    return None


def verify(rows: Iterable[ChainRow], anchor: Marker | None, head: Marker | None, keys: Keyring) -> ChainCheck:
    """Check the chain from its anchor through `rows` (in id order) to its head; report the first broken link.

    Stops at the first problem: after a broken link nothing later can be trusted to mean anything.
    """
    count, first_id, previous = 0, None, None
    used: dict[str, None] = {}

    def result(broken: BrokenLink | None = None) -> ChainCheck:
        last_id = previous.event_id if previous is not None else None
        return ChainCheck(count, first_id, last_id, tuple(used), broken)

    for name, marker in ((ANCHOR, anchor), (HEAD, head)):
        problem = _marker_problem(keys, marker, name)
        if problem is not None:
            return result(BrokenLink(None, None, problem))
    assert anchor is not None and head is not None  # checked just above
    for row in rows:
        problem = _row_problem(keys, anchor, previous, row)
        if problem is not None:
            return result(BrokenLink(row.event_id, row.at, problem))
        count, first_id, previous = count + 1, first_id if first_id is not None else row.event_id, row
        used.setdefault(row.key_id)
    return result(_end_problem(anchor, head, previous))


def _row_problem(keys: Keyring, anchor: Marker, previous: ChainRow | None, row: ChainRow) -> str | None:
    """What is wrong with `row` following `previous` (None: the first row, which follows the anchor)."""
    if previous is None and row.event_id != anchor.event_id:
        what = "events before it were removed" if row.event_id > anchor.event_id else "this event was inserted"
        return f"the trail starts at this event, but the chain's anchor is event {anchor.event_id}: {what}"
    key = keys.get(row.key_id)
    if key is None:
        return f"signed with key id {row.key_id}, which is not configured (audit.hmac_key or audit.previous_hmac_keys)"
    if link(key, previous.chain_hash if previous is not None else anchor.hash, row) != row.chain_hash:
        after = f"event {previous.event_id}" if previous is not None else "the chain's anchor"
        return f"does not follow from {after}: this event was edited, or an event between them was removed or inserted"
    return None


def _end_problem(anchor: Marker, head: Marker, last: ChainRow | None) -> BrokenLink | None:
    """What is wrong with where the trail ends (`last`, None when empty), measured against the head."""
    if last is None:
        if head.event_id != anchor.event_id - 1 or head.hash != anchor.hash:
            return BrokenLink(None, None, f"the trail is empty, but the chain's head is event {head.event_id}")
        return None
    if last.event_id == head.event_id and last.chain_hash == head.hash:
        return None
    if last.event_id < head.event_id:
        problem = f"the trail ends here, but the chain's head is event {head.event_id}: later events were removed"
    else:
        problem = f"the chain's head is event {head.event_id}: this and any later event were added outside flagsync"
    return BrokenLink(last.event_id, last.at, problem)
