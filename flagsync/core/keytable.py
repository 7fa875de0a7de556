"""A compact set of text keys numbered in first-seen order, for per-person state at a million people.

A dict keyed by str costs about 90 bytes a key on CPython (the str object and the dict's entry)
before any value, and an int value another 28. `KeyTable` keeps the keys' UTF-8 bytes in one
bytearray and an open-addressing hash table of 32-bit slots, so a key costs its own length plus
about 20 bytes: 8 for where its bytes start, 4 for its hash and, at a load factor between 1/3
and 2/3, 6 to 12 for the slots. Keys are numbered 0, 1, 2, ... in the order they were first
added; callers keep their own per-key state in arrays indexed by that number.

Pure Python, no I/O. Lookups cost about a microsecond (a dict's is a tenth of that): worth it only
where memory is the constraint. Not thread-safe; copy() before handing a table to another reader
that must not see later additions.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

__all__ = ["KeyTable"]

_EMPTY = -1
_HASH_MASK = 0xFFFFFFFF
_MIN_SLOTS = 8


class KeyTable:
    """Text keys numbered 0..n-1 in first-seen order: `add`, `index`, `key`, `len`."""

    __slots__ = ("_count", "_hashes", "_keys", "_mask", "_slots", "_starts")

    def __init__(self) -> None:
        self._keys = bytearray()  # every key's UTF-8 bytes, back to back
        self._starts = array("Q", [0])  # key i is _keys[_starts[i]:_starts[i + 1]]
        self._hashes = array("I")  # the low 32 bits of each key's hash (enough for tables up to 2**32 slots)
        self._slots = array("i", [_EMPTY]) * _MIN_SLOTS  # key number per slot, _EMPTY where none
        self._mask = _MIN_SLOTS - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.index(key) != _EMPTY

    def index(self, key: str) -> int:
        """The number of `key`, or -1 when it was never added."""
        return self._find(hash(key) & _HASH_MASK, _encode(key))[0]

    def add(self, key: str) -> tuple[int, bool]:
        """The number of `key`, adding it first if new; the bool says whether it was added."""
        short = hash(key) & _HASH_MASK
        encoded = key.encode("utf-8", "surrogatepass")
        slots, hashes, starts, keys, mask = self._slots, self._hashes, self._starts, self._keys, self._mask
        slot = short & mask
        while True:  # _find, inlined: this is the fold's hot path
            number = slots[slot]
            if number == _EMPTY:
                break
            if hashes[number] == short and keys[starts[number] : starts[number + 1]] == encoded:
                return number, False
            slot = (slot + 1) & mask
        number = self._count
        keys += encoded
        starts.append(len(keys))
        hashes.append(short)
        slots[slot] = number
        self._count = number + 1
        if 3 * self._count > 2 * len(slots):
            self._grow()
        return number, True

    def key(self, number: int) -> str:
        """The key numbered `number` (IndexError for a number never given out)."""
        if not 0 <= number < self._count:
            raise IndexError(number)
        return self._keys[self._starts[number] : self._starts[number + 1]].decode("utf-8", "surrogatepass")

    def keys(self) -> list[str]:
        """Every key, in number order (a new list of new str objects: costly for a big table)."""
        return [self.key(number) for number in range(self._count)]

    def encoded_keys(self) -> Iterator[bytes]:
        """Every key's UTF-8 bytes, in number order (no str objects made)."""
        keys, starts = bytes(self._keys), self._starts
        for number in range(self._count):
            yield keys[starts[number] : starts[number + 1]]

    def copy(self) -> KeyTable:
        """An independent copy (later additions to either are not seen by the other)."""
        other = KeyTable.__new__(KeyTable)
        other._keys = bytearray(self._keys)
        other._starts = array("Q", self._starts)
        other._hashes = array("I", self._hashes)
        other._slots = array("i", self._slots)
        other._mask = self._mask
        other._count = self._count
        return other

    def extends(self, other: KeyTable) -> bool:
        """Whether this table holds `other`'s keys with the same numbers (and maybe more after them)."""
        count, starts = other._count, other._starts
        return count <= self._count and self._keys[: len(other._keys)] == other._keys and self._starts[: len(starts)] == starts

    def nbytes(self) -> int:
        """The bytes held in the table's buffers (for benchmarks and tests)."""
        return (
            len(self._keys)
            + self._starts.itemsize * len(self._starts)
            + self._hashes.itemsize * len(self._hashes)
            + self._slots.itemsize * len(self._slots)
        )

    # ------------------------------------------------------------------------------------------

    def _find(self, short: int, encoded: bytes) -> tuple[int, int]:
        """(number, slot) of the key with this short hash and encoding, or (-1, the empty slot for it). Linear probing."""
        slots, hashes, starts, keys, mask = self._slots, self._hashes, self._starts, self._keys, self._mask
        slot = short & mask
        while True:
            number = slots[slot]
            if number == _EMPTY:
                return _EMPTY, slot
            if hashes[number] == short and keys[starts[number] : starts[number + 1]] == encoded:
                return number, slot
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        size = 2 * len(self._slots)
        mask = size - 1
        slots = array("i", [_EMPTY]) * size
        for number, short in enumerate(self._hashes):
            slot = short & mask
            while slots[slot] != _EMPTY:
                slot = (slot + 1) & mask
            slots[slot] = number
        self._slots = slots
        self._mask = mask


def _encode(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")
