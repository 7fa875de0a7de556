"""Per-person digests of a consent source's rows: who changed between two reads, without keeping any row.

A source adds each row's 64-bit digest (a hash of the row's contract values and its duplicate
mark, made by the source) to the digest of the person the row names. A person's digest is the sum
of their rows' digests modulo 2**64, so it does not depend on row order. Comparing two reads'
digests person by person names exactly the people with a row added, removed, changed or moved to
or from them, and the people who appeared or disappeared; two different sets of rows give the same
sum only by a 64-bit collision.

Memory: the person's id in a `KeyTable` (its UTF-8 length plus about 20 bytes) and 8 bytes of
digest - about 30 bytes a person for the usual 8-character ids. No person id, record or value is
kept in the clear beyond the key table, which lives in the process only (never stored). Pure: no
I/O, no clock.
"""

from __future__ import annotations

from array import array

from flagsync.core.keytable import KeyTable

__all__ = ["DIGEST_MASK", "PersonDigests"]

#: Row and person digests are unsigned 64-bit integers.
DIGEST_MASK = 0xFFFF_FFFF_FFFF_FFFF

# Digests are compared in blocks of this many people first (one C-level comparison per block).
_BLOCK = 4096


class PersonDigests:
    """People numbered as in `people` (a `KeyTable`), each with the sum of their rows' digests."""

    __slots__ = ("digests", "people")

    def __init__(self, people: KeyTable | None = None, digests: array[int] | None = None) -> None:
        self.people = people if people is not None else KeyTable()
        self.digests = digests if digests is not None else array("Q", bytes(8 * len(self.people)))
        if len(self.digests) != len(self.people):
            raise ValueError("one digest per person")

    def __len__(self) -> int:
        return len(self.people)

    def add(self, person_id: str, row_digest: int) -> int:
        """Add one row's digest to its person's (adding the person if new); returns the person's number."""
        number, added = self.people.add(person_id)
        if added:
            self.digests.append(row_digest & DIGEST_MASK)
        else:
            self.digests[number] = (self.digests[number] + row_digest) & DIGEST_MASK
        return number

    def nbytes(self) -> int:
        """Bytes held in the buffers (key table and digests)."""
        return self.people.nbytes() + self.digests.itemsize * len(self.digests)

    def changed_since(self, before: PersonDigests) -> frozenset[str]:
        """The people whose digest differs from `before`'s, or who are in only one of the two."""
        new, old = self.people, before.people
        if new.extends(old):
            # The same people in the same order, maybe more after them (rows edited or appended): compare in blocks.
            shared = len(old)
            changed = [new.key(n) for n in range(shared, len(new))]
            for start in range(0, shared, _BLOCK):
                end = min(start + _BLOCK, shared)
                if self.digests[start:end] != before.digests[start:end]:
                    changed += (new.key(n) for n in range(start, end) if self.digests[n] != before.digests[n])
            return frozenset(changed)
        changed = []
        seen = bytearray(len(old))
        for number in range(len(new)):
            key = new.key(number)
            was = old.index(key)
            if was < 0:
                changed.append(key)
                continue
            seen[was] = 1
            if before.digests[was] != self.digests[number]:
                changed.append(key)
        gone = seen.find(0)
        while gone >= 0:
            changed.append(old.key(gone))
            gone = seen.find(0, gone + 1)
        return frozenset(changed)
