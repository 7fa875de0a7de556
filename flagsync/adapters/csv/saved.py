"""The CSV source's person index kept on disk, so a new process reads a person's rows without reading the whole file.

A one-off `flagsync sync --person` is a new process: without this it would build the per-file
person index (`index`) by reading every row, however large the file. Each process that builds an
index of a version of the file (a person read, or the daemon's change poll after the file
changed) also saves it here, from a background thread; a later process whose file still has the
identity the saved index was built for reads it instead of the file: its size is about 25 bytes
a row, and one lookup reads it, checks its MAC and binary-searches it.

What it holds, and what it never holds. No id and no value from the file: per person a keyed
32-bit hash of their id (BLAKE2b under a key derived from `audit.hmac_key`, the same secret that
keys every pseudonym in the state store, with its own label) next to their number; per data row
its byte offset in the file, the next row of the same person and whether its record id repeats
in the file. Without the key the hashes cannot be tested against candidate ids. The header
records the format, the key's id, the byte order, the file's stat identity and the header layout
the index was built with. The whole file is MAC'ed (BLAKE2b under the derived key), so a
truncated, corrupted or altered index is never used, and is written to a temporary file (mode
0600) that replaces the old one atomically.

When it is used. Only an index that the racy-window rule already trusts by identity alone is
saved (`PersonIndex.racy_until_ns` is 0: the file was last modified more than `RACY_WINDOW_NS`
before the index was built, or a content check after that window confirmed it), so a saved index
is trusted when the file's device, inode, size, mtime_ns and ctime_ns are still those recorded,
the header of the file maps the contract columns to the same positions, and the key id, format
and byte order match. Anything else, or a row that does not parse as the index says, and the
process builds its own index (which replaces the saved one). At a million people about one
person in 4,300 shares their 32-bit hash with another: that person's rows are read too, parsed
and left out (their id's hash is the one looked up); a row whose person's hash differs means
the index is wrong, and it is not used.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import structlog

from flagsync.adapters.csv.index import PersonIndex
from flagsync.adapters.csv.lines import Header

log = structlog.get_logger("flagsync.source")

#: The label under which the index key is derived from the pseudonym key (never a pseudonym's input).
INDEX_KEY_LABEL = b"flagsync:csv-person-index:v1"

#: The saved index's file name beside a SQLite state database: `<state file name>` + this.
SAVED_INDEX_SUFFIX = "-csv-person-index"

_MAGIC = b"FSPIDX01"
_FORMAT = 1
_MAC_SIZE = 32
_STALE_TEMPORARY_SECONDS = 600


class NotAnIndexError(OSError):
    """The configured index path holds a file that is not a saved person index: it is never overwritten."""


def derive_index_key(pseudonym_key: bytes) -> bytes:
    """The key of the saved index's hashes and MAC: HMAC-SHA256 of `INDEX_KEY_LABEL` under the pseudonym key."""
    return hmac.new(pseudonym_key, INDEX_KEY_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class SavedLookup:
    """One saved index, loaded and checked: finds a person's rows by the hash of their id."""

    identity: tuple[int, int, int, int, int]
    header: Header
    hashes: memoryview  # the people's id hashes, sorted
    people: memoryview  # beside each hash, the number of its person
    offsets: memoryview  # per data row
    first_row: memoryview  # per person number
    next_row: memoryview  # per data row: the next row of the same person, -1 at the end
    repeated: bytes  # per data row: 1 when its record id occurs more than once in the file

    def rows(self, person_hash: int) -> list[tuple[int, bool]]:
        """(offset, record id repeated) of every row of every person whose id hashes to `person_hash`, in file order."""
        hashes, found = self.hashes, list[int]()
        at = bisect_left(hashes, person_hash)
        while at < len(hashes) and hashes[at] == person_hash:
            row = self.first_row[self.people[at]]
            while row >= 0:
                found.append(row)
                row = self.next_row[row]
            at += 1
        found.sort()
        return [(self.offsets[row], self.repeated[row] == 1) for row in found]


class SavedIndex:
    """Where the person index of one CSV file is saved, and the key that hashes and MACs it (see the module docstring)."""

    def __init__(self, path: Path, key: bytes, key_id: str) -> None:
        if not key:
            raise ValueError("the index key must not be empty")
        self.path = Path(path)
        self._key_id = key_id
        self._hash_key = hashlib.blake2b(key=key, digest_size=4, person=b"person id").copy
        self._mac_key = key

    def person_hash(self, person_id: str) -> int:
        """The 32-bit keyed hash of a person id, as the saved index holds it."""
        return self.short_hash(person_id.encode("utf-8", "surrogatepass"))

    def short_hash(self, encoded: bytes) -> int:
        """The 32-bit keyed hash of a person id's UTF-8 bytes."""
        hasher = self._hash_key()
        hasher.update(encoded)
        return int.from_bytes(hasher.digest(), sys.byteorder)

    def save(self, index: PersonIndex) -> None:
        """Write `index` (which the identity alone must already be trusted for) in place of any saved one; raises OSError.

        Replaces only a saved index (or an empty file): a path that holds anything else, say the consent
        file itself or the state database named by mistake, raises NotAnIndexError and is left as it is.
        """
        if index.racy_until_ns:
            raise ValueError("only an index trusted by identity alone may be saved")
        try:
            with self.path.open("rb") as existing:
                start = existing.read(len(_MAGIC))
        except FileNotFoundError:
            start = _MAGIC
        if start not in {_MAGIC, b""}:
            raise NotAnIndexError(self.path)
        hashes = array("I", map(self.short_hash, index.people.encoded_keys()))
        people = array("I", sorted(range(len(hashes)), key=hashes.__getitem__))
        header = json.dumps(
            {
                "format": _FORMAT,
                "key_id": self._key_id,
                "byteorder": sys.byteorder,
                "identity": list(index.identity),
                "saved_ns": time.time_ns(),
                "people": len(people),
                "rows": len(index.offsets),
                "width": index.header.width,
                "positions": list(index.header.positions),
            },
            separators=(",", ":"),
        ).encode()
        header += b" " * (-(len(_MAGIC) + 4 + len(header)) % 8)  # the offsets (8 bytes each) start 8-byte aligned
        parts = [
            _MAGIC,
            len(header).to_bytes(4, "little"),
            header,
            array("Q", index.offsets).tobytes(),
            array("I", map(hashes.__getitem__, people)).tobytes(),
            people.tobytes(),
            array("i", index.first_row).tobytes(),
            array("i", index.next_row).tobytes(),
            bytes(index.repeated),
        ]
        mac = hashlib.blake2b(key=self._mac_key, digest_size=_MAC_SIZE, person=b"index mac")
        for part in parts:
            mac.update(part)
        parts.append(mac.digest())
        _write_private(self.path, parts)

    def load(self) -> SavedLookup | None:
        """The saved index if there is one written under this key, in this format, intact; else None (never raises)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        try:
            return self._parse(data)
        except (ValueError, KeyError, TypeError, IndexError):  # a corrupt header: treated as no index
            return None

    def _parse(self, data: bytes) -> SavedLookup | None:
        if len(data) < len(_MAGIC) + 4 + _MAC_SIZE or not data.startswith(_MAGIC):
            return None
        body, mac = data[:-_MAC_SIZE], data[-_MAC_SIZE:]
        expected = hashlib.blake2b(body, key=self._mac_key, digest_size=_MAC_SIZE, person=b"index mac").digest()
        if not hmac.compare_digest(mac, expected):
            return None
        start = len(_MAGIC) + 4
        header_end = start + int.from_bytes(data[len(_MAGIC) : start], "little")
        meta = json.loads(data[start:header_end])
        if meta["format"] != _FORMAT or meta["key_id"] != self._key_id or meta["byteorder"] != sys.byteorder:
            return None
        people, rows = int(meta["people"]), int(meta["rows"])
        view = memoryview(body)
        ends = list(accumulate((8 * rows, 4 * people, 4 * people, 4 * people, 4 * rows), initial=header_end))
        if len(body) - ends[-1] != rows:
            return None
        offsets, hashes, numbers = (
            view[ends[0] : ends[1]].cast("Q"),
            view[ends[1] : ends[2]].cast("I"),
            view[ends[2] : ends[3]].cast("I"),
        )
        first_row, next_row = view[ends[3] : ends[4]].cast("i"), view[ends[4] : ends[5]].cast("i")
        at = ends[5]
        return SavedLookup(
            identity=tuple(int(value) for value in meta["identity"]),  # type: ignore[arg-type] # five ints, as saved
            header=Header(width=int(meta["width"]), positions=tuple(int(p) for p in meta["positions"])),
            hashes=hashes,
            people=numbers,
            offsets=offsets,
            first_row=first_row,
            next_row=next_row,
            repeated=bytes(view[at:]),
        )


class IndexSaver:
    """Saves the newest index handed over from a background thread, so no read waits for the write.

    `flush` waits until what was handed over is written (a process calls it before it exits).
    A failed write is logged (no path content beyond the index's own file name, no id) and the next
    index handed over is tried again; nothing that reads depends on a save succeeding.
    """

    def __init__(self, save: Callable[[PersonIndex], None]) -> None:
        self._save = save
        self._pending: PersonIndex | None = None
        self._busy = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, index: PersonIndex) -> None:
        with self._changed:
            self._pending = index
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flagsync-index-saver", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or being written; False if `timeout` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending is not None)
                index, self._pending, self._busy = self._pending, None, True
            try:
                assert index is not None
                started = time.perf_counter()
                self._save(index)
                log.debug("source.index_saved", rows=len(index.offsets), seconds=round(time.perf_counter() - started, 3))
            except (OSError, ValueError) as exc:
                log.warning("source.index_not_saved", error=type(exc).__name__)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()


def _write_private(path: Path, parts: list[bytes]) -> None:
    """Write `parts` to `path` through a temporary file in the same directory (mode 0600), replaced atomically.

    Temporary files a killed process left behind (older than `_STALE_TEMPORARY_SECONDS`) are removed first.
    """
    for left in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - left.stat().st_mtime > _STALE_TEMPORARY_SECONDS:
                left.unlink()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for part in parts:
                handle.write(part)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
