"""The per-person index of one version of the consent CSV: where each person's rows are and their digests, built from its records.

Person reads (`read_person`) go through this index instead of reading the whole file. The first
person read of a file version reads it once and keeps, per data row, its byte offset (8 bytes),
the next row of the same person (4) and whether its record id is repeated in the file (1); per
person its id in a compact table (the id's length plus about 20 bytes) and its first row (4):
about 45 bytes a row when each person has one row. Finding repeated record ids needs a record id
table while the index is built (about the id's length plus 25 bytes a row), dropped afterwards.
A person's rows are then read at their offsets and parsed exactly as a whole read parses them
(same header layout, same checks, same parser), and only those whose parsed person id is the one
asked for are returned.

For change detection the same pass keeps each person's digest (`flagsync.core.digests`: the sum of
a 64-bit hash of each of their rows' contract values and duplicate mark; 8 bytes a person beside
the index's ~45 bytes a row, and 8 bytes a row of record-id hashes). Rows appended to the file are
added to copies of the index's tables (`appended`), unless a new row's record id hash is already
known (it may repeat a record id, which changes who is uncertain).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import compress

from flagsync.adapters.csv.lines import Header
from flagsync.core.digests import DIGEST_MASK, PersonDigests
from flagsync.core.keytable import KeyTable
from flagsync.core.records import normalize_person_id, normalize_text

_WATERMARK_PREFIX = "sha256:"

# Added to a person's digest for each of their rows whose record id is repeated in the file.
_REPEATED_MARK = 0x9E37_79B9_7F4A_7C15


@dataclass(slots=True)
class PersonIndex:
    """Where each person's rows are in one version of the file (see the module docstring)."""

    identity: tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
    digest: bytes
    header: Header
    people: KeyTable
    first_row: array[int]  # per person
    next_row: array[int]  # per data row: the next row of the same person, -1 at the end
    offsets: array[int]  # per data row: where the record starts
    repeated: bytearray  # per data row: 1 when its record id occurs more than once in the file
    digests: array[int]  # per person: the sum of their rows' digests (`PersonDigests`), for change detection
    record_hashes: array[int]  # sorted 64-bit hashes of the rows' record ids, to extend the index by appended rows
    racy_until_ns: int = 0  # 0: the stat identity alone is trusted; else hash-check until this time has passed

    @property
    def watermark(self) -> str:
        """The change watermark of this version of the file: its content's SHA-256."""
        return _WATERMARK_PREFIX + self.digest.hex()

    def person_digests(self) -> PersonDigests:
        return PersonDigests(self.people, self.digests)

    def rows(self, person_id: str) -> list[int]:
        """The data rows of `person_id`, in file order."""
        number = self.people.index(person_id)
        if number < 0:
            return []
        found: list[int] = []
        row = self.first_row[number]
        while row >= 0:
            found.append(row)
            row = self.next_row[row]
        return found


def index_records(
    header: Header,
    records: Iterator[tuple[int, list[str]]],
    *,
    identity: tuple[int, int, int, int, int],
    digest: Callable[[], bytes],
    racy_until_ns: int,
) -> PersonIndex:
    """The index of a whole file's `records`; `digest` (called once they are read) gives the SHA-256 they came from."""
    record_id_at, person_id_at = header.positions[0], header.positions[1]
    values = header.values
    people, ids = KeyTable(), KeyTable()
    counts = bytearray()
    first_row, last_row, next_row, offsets, per_row = array("i"), array("i"), array("i"), array("Q"), array("i")
    digests, person_of_row, record_hashes = array("Q"), array("i"), array("Q")
    for offset, fields in records:
        row = len(offsets)
        offsets.append(offset)
        record_id = normalize_text(fields[record_id_at])
        per_row.append(count_record_id(ids, counts, record_id))
        if record_id is not None:
            record_hashes.append(hash(record_id) & DIGEST_MASK)
        next_row.append(-1)
        person_id = normalize_person_id(fields[person_id_at])
        if person_id is None:
            person_of_row.append(-1)
            continue
        # The row's digest: Python's hash of its contract values (keyed per process; kept in memory only).
        row_digest = hash(values(fields)) & DIGEST_MASK
        number, added = people.add(person_id)
        person_of_row.append(number)
        if added:
            first_row.append(row)
            last_row.append(row)
            digests.append(row_digest)
        else:  # append to the person's chain, keeping file order
            next_row[last_row[number]] = row
            last_row[number] = row
            digests[number] = (digests[number] + row_digest) & DIGEST_MASK
    del ids, last_row
    repeated = bytearray(1 if number >= 0 and counts[number] > 1 else 0 for number in per_row)
    # A row's duplicate mark is part of what decides its person: it goes into their digest too.
    for row in compress(range(len(repeated)), repeated):
        number = person_of_row[row]
        if number >= 0:
            digests[number] = (digests[number] + _REPEATED_MARK) & DIGEST_MASK
    del person_of_row
    return PersonIndex(
        identity=identity,
        digest=digest(),
        header=header,
        people=people,
        first_row=first_row,
        next_row=next_row,
        offsets=offsets,
        repeated=repeated,
        digests=digests,
        record_hashes=array("Q", sorted(record_hashes)),
        racy_until_ns=racy_until_ns,
    )


def appended(old: PersonIndex, records: Iterator[tuple[int, list[str]]]) -> PersonIndex | None:
    """Copies of `old`'s tables with `records` (appended rows) added; None when a record id may repeat.

    The result keeps `old`'s identity and digest, for the caller to replace with the grown file's.
    """
    values = old.header.values
    record_id_at, person_id_at = old.header.positions[0], old.header.positions[1]
    people, digests = old.people.copy(), array("Q", old.digests)
    first_row, next_row, offsets = array("i", old.first_row), array("i", old.next_row), array("Q", old.offsets)
    repeated, known, added_ids = bytearray(old.repeated), old.record_hashes, set[int]()
    for offset, fields in records:
        record_id = normalize_text(fields[record_id_at])
        if record_id is not None:
            record_hash = hash(record_id) & DIGEST_MASK
            at = bisect_left(known, record_hash)
            if (at < len(known) and known[at] == record_hash) or record_hash in added_ids:
                return None  # maybe a repeated record id: the full pass decides who it makes uncertain
            added_ids.add(record_hash)
        row = len(offsets)
        offsets.append(offset)
        next_row.append(-1)
        repeated.append(0)
        person_id = normalize_person_id(fields[person_id_at])
        if person_id is None:
            continue
        row_digest = hash(values(fields)) & DIGEST_MASK
        number, added = people.add(person_id)
        if added:
            first_row.append(row)
            digests.append(row_digest)
            continue
        last = first_row[number]
        while next_row[last] >= 0:
            last = next_row[last]
        next_row[last] = row
        digests[number] = (digests[number] + row_digest) & DIGEST_MASK
    return PersonIndex(
        identity=old.identity,
        digest=old.digest,
        header=old.header,
        people=people,
        first_row=first_row,
        next_row=next_row,
        offsets=offsets,
        repeated=repeated,
        digests=digests,
        record_hashes=array("Q", sorted((*known, *added_ids))) if added_ids else known,
    )


def count_record_id(ids: KeyTable, counts: bytearray, record_id: str | None) -> int:
    """Count one occurrence of `record_id` (saturating at 2); its number, or -1 for an absent id."""
    if record_id is None:
        return -1
    number, added = ids.add(record_id)
    if added:
        counts.append(1)
    elif counts[number] == 1:
        counts[number] = 2
    return number
