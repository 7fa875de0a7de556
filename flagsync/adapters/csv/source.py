"""Reads consent records from a CSV export of the consent form, keeping only the contract's columns.

The file is UTF-8 (a byte order mark is allowed) with a header row and RFC 4180 quoting. Each row
is cut down to the mapped columns the moment the csv module has split it, so no other column
(names, addresses, notes, ...) reaches anything else. Rows are streamed.

A whole read makes two passes: the first checks the structure and finds repeated record ids (so
every occurrence of a duplicated id can be quarantined, including the first), the second parses
and yields. Both hash the file's bytes; if they differ the file changed mid-read and the read
fails. A file that cannot be read as a whole (missing, or any fault `lines` names) raises
`SourceError` naming the line, never a cell's content. Record ids are compared without
surrounding whitespace. Person reads go through a per-file index (`index`): the one this process
holds if it is still valid, else the one a process saved (`saved`: a new process reads a person
without reading the file) if it describes the file as it is now, else one built from the file.
Every index this process builds, once the identity alone can trust it, is saved in the
background; `close` waits for that.

When the index is trusted: before each person read the file is opened and fstat'ed; the index
is used only if device, inode, size, mtime_ns and ctime_ns are all what they were when it was
built. A rewrite can keep all of them only within the file system's timestamp granularity, so if
the file had been modified less than `RACY_WINDOW_NS` (2 s) before the index was built, its
content's SHA-256 is checked as well on each person read until one such check passes after that
window (the same rule as git's "racily clean" entries). Anything else rebuilds the index. A row
that no longer parses as the index says (wrong width, another person) rebuilds it too.

Change detection (`changes_since`, which the daemon calls every change poll): the watermark is the
SHA-256 of the file's content. The probe is the person index's validity check above: one `os.stat`
(device, inode, size, mtime_ns, ctime_ns; a content hash as well inside the racy window), so an
unchanged file costs no read at all. When the file changed, one pass over it rebuilds the person
index and, in the same pass, each person's digest (the index's). A file that only gained rows at
its end (it begins with exactly the bytes the index was built from: their SHA-256 matches) is not
read again: only the new rows are parsed, into copies of the index's tables, unless a new row's
record id hash is already known, in which case the whole file is read. The people whose digests
differ from those of the version the caller's watermark names are the people who changed: a row
added, edited, deleted or moved to or from them, and people who appeared or whose rows all went
(their ids are still in the previous version's index, so they are named too and their flag goes
in a person sync). The previous version is kept only while the caller's watermark still names it
(at most two versions at once). "Full reconcile" (`person_ids` None) only when this process does
not hold the version the watermark names: the first poll, or a watermark written by another
process. What this cannot see: a change to a column flagsync does not read (it changes nothing
flagsync decides), and two different versions with the same 64-bit digest sum for a person (a
collision).
"""

from __future__ import annotations

import csv
import hashlib
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from io import BufferedReader
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from flagsync.adapters.csv.index import PersonIndex, appended, count_record_id, index_records
from flagsync.adapters.csv.lines import CHUNK, Header, LineFeed, NoHash, RecordReader, apply_field_limit
from flagsync.adapters.csv.saved import IndexSaver, SavedIndex, SavedLookup
from flagsync.core.keytable import KeyTable
from flagsync.core.model import SourceItem, is_valid_person_id
from flagsync.core.records import RowParser, column_map, normalize_text
from flagsync.errors import ConfigError, SourceError
from flagsync.ports import Changes

_DEFAULT_ZONE = "Europe/London"

#: A file modified this shortly before its index was built is checked by content hash as well.
RACY_WINDOW_NS = 2_000_000_000

#: How long `close` waits for the index being saved, by default (about 1.5 s for a million rows on an idle machine).
SAVE_WAIT_SECONDS = 60.0

log = structlog.get_logger("flagsync.source")


class _Stale(Exception):
    """Internal: the index no longer describes the file."""


class CsvConsentSource:
    """A `ConsentSource` over a CSV file.

    `columns` maps contract names to header names (identity by default; a header name is matched
    exactly, else case-insensitively); `zone` is the zone of naive timestamps (Europe/London by
    default). Nothing is opened until a method is called. Raises ConfigError for an unknown
    contract name in `columns`.
    """

    def __init__(
        self,
        path: Path,
        columns: Mapping[str, str] | None = None,
        zone: ZoneInfo | None = None,
        *,
        saved: SavedIndex | None = None,
        save_wait_seconds: float = SAVE_WAIT_SECONDS,
    ) -> None:
        if not str(path).strip():
            raise ConfigError("source.path must name the consent CSV file")
        self._path = Path(path)
        self._reader = RecordReader(self._path, column_map(columns))
        self._zone = zone if zone is not None else ZoneInfo(_DEFAULT_ZONE)
        self._index: PersonIndex | None = None
        self._index_lock = threading.Lock()
        # The index saved on disk (`saved`): the one loaded for the file's current identity, and the identity of a
        # saved index found wrong (not loaded again); the saver writes each index this process builds.
        self._saved = saved
        self._saver = IndexSaver(saved.save) if saved is not None else None
        self._save_wait_seconds = save_wait_seconds
        self._lookup: SavedLookup | None = None
        self._rejected_identity: tuple[int, int, int, int, int] | None = None
        # Change detection: the version a caller's watermark names, while it still differs from the current one,
        # and the last diff worked out (so a caller retrying the same watermark does not pay for it again).
        self._retained: PersonIndex | None = None
        self._last_diff: tuple[str, str, frozenset[str]] | None = None

    # ------------------------------------------------------------------------------------------
    # ConsentSource

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        """Every record, streamed; raises SourceError when the file cannot be read as a whole."""
        return self._read_all(now)

    def read_person(self, person_id: str, now: datetime) -> Iterator[SourceItem]:
        """Every record that `read_all` attributes to this person id, found through the per-file index."""
        if not is_valid_person_id(person_id):
            return iter(())  # no record can name a malformed id
        return iter(self._read_person(person_id, now))

    def changes_since(self, watermark: str | None) -> Changes:
        """The people whose rows differ between the version `watermark` names and the file now (see the module docstring).

        Costs one `os.stat` while the file is unchanged; after a change, one pass over the file (which
        also rebuilds the person index the following person reads use). None ("full reconcile") when
        this process does not hold the version `watermark` names (the first poll, another process's
        watermark).
        """
        with self._index_lock:
            before = self._index
            index = self._current_index_locked()
            current = index.watermark
            if watermark == current:
                self._retained = None
                return Changes(person_ids=frozenset(), watermark=current)
            base = next((kept for kept in (self._retained, before) if kept is not None and kept.watermark == watermark), None)
            self._retained = base
            if base is None:
                return Changes(person_ids=None, watermark=current)
            last = self._last_diff
            if last is not None and last[0] == base.watermark and last[1] == current:
                return Changes(person_ids=last[2], watermark=current)
            changed = index.person_digests().changed_since(base.person_digests())
            self._last_diff = (base.watermark, current, changed)
            return Changes(person_ids=changed, watermark=current)

    def describe(self) -> str:
        return f"csv file {self._path}"

    def close(self) -> None:
        """Wait (up to `save_wait_seconds`) until the index this process built is saved; the file itself is never held open."""
        if self._saver is not None and not self._saver.flush(self._save_wait_seconds):
            log.warning("source.index_save_unfinished", waited_seconds=self._save_wait_seconds)

    # ------------------------------------------------------------------------------------------
    # Whole reads

    def _read_all(self, now: datetime) -> Iterator[SourceItem]:
        apply_field_limit()
        first = hashlib.sha256()
        with self._open() as binary:
            header, records = self._reader.records(binary, first)
            record_id_at = header.positions[0]
            ids = KeyTable()
            counts = bytearray()
            per_row = array("i")
            for _offset, fields in records:
                per_row.append(count_record_id(ids, counts, normalize_text(fields[record_id_at])))
            del ids
        repeated = bytes(1 if number >= 0 and counts[number] > 1 else 0 for number in per_row)
        del per_row, counts
        second = hashlib.sha256()
        parse = RowParser(now=now, zone=self._zone).parse
        with self._open() as binary:
            header, records = self._reader.records(binary, second)
            values = header.values
            rows = len(repeated)
            for row, (_offset, fields) in enumerate(records):
                # A row the first pass did not see means the file changed: the hash check below fails the read.
                yield parse(values(fields), repeated[row] == 1 if row < rows else True)
        if first.digest() != second.digest():
            raise SourceError(f"the consent CSV file {self._path} changed while it was being read")

    # ------------------------------------------------------------------------------------------
    # Person reads through the index

    def _read_person(self, person_id: str, now: datetime) -> list[SourceItem]:
        apply_field_limit()
        for _ in range(2):
            try:
                with self._index_lock:  # one validity check: inside the racy window it hashes the file
                    held = self._index
                    index = held if held is not None and self._still_valid(held) else None
                    lookup = self._saved_lookup() if index is None else None
                    if index is None and lookup is None:
                        index = self._replace_index_locked(held)
                if lookup is not None:
                    return self._read_saved(person_id, now, lookup)
                assert index is not None
                rows = [(index.offsets[row], index.repeated[row] == 1) for row in index.rows(person_id)]
                return self._read_rows(person_id, now, identity=index.identity, header=index.header, rows=rows)
            except _Stale:
                with self._index_lock:
                    self._index = None
        raise SourceError(f"the consent CSV file {self._path} changed while it was being read")

    def _read_rows(
        self,
        person_id: str,
        now: datetime,
        *,
        identity: tuple[int, int, int, int, int],
        header: Header,
        rows: list[tuple[int, bool]],
        collides: Callable[[str], bool] | None = None,
    ) -> list[SourceItem]:
        """Parse the rows at these (offset, record id repeated) of the file with this identity; _Stale if it is not so.

        A row of another person is left out only where `collides` says that person shares the index's hash.
        """
        if not rows:
            return []
        parse = RowParser(now=now, zone=self._zone).parse
        items: list[SourceItem] = []
        with self._open() as binary:
            if _identity(os.fstat(binary.fileno())) != identity:
                raise _Stale
            for offset, repeated in rows:
                binary.seek(offset)
                reader = csv.reader(self._reader.lines(binary, NoHash(), bom=False), strict=True)
                try:
                    fields = next(reader, None)
                except csv.Error:
                    raise _Stale from None
                if fields is None or len(fields) != header.width:
                    raise _Stale
                item = parse(header.values(fields), repeated)
                if item.person_id != person_id:
                    if collides is not None and item.person_id is not None and collides(item.person_id):
                        continue
                    raise _Stale
                items.append(item)
        return items

    # ------------------------------------------------------------------------------------------
    # Person reads through the saved index (`saved`), in a process that has built none

    def _saved_lookup(self) -> SavedLookup | None:
        """The saved index if it describes the file as it is now under this source's column map; else None."""
        if self._saved is None:
            return None
        try:
            identity = _identity(os.stat(self._path))
        except OSError:
            return None
        lookup = self._lookup
        if lookup is not None and lookup.identity == identity:
            return lookup
        if identity == self._rejected_identity:
            return None
        lookup = self._saved.load()
        if lookup is None or lookup.identity != identity or lookup.header != self._current_header():
            return None
        self._lookup = lookup
        return lookup

    def _read_saved(self, person_id: str, now: datetime, lookup: SavedLookup) -> list[SourceItem]:
        saved = self._saved
        assert saved is not None
        wanted = saved.person_hash(person_id)
        try:
            return self._read_rows(
                person_id,
                now,
                identity=lookup.identity,
                header=lookup.header,
                rows=lookup.rows(wanted),
                collides=lambda other: saved.person_hash(other) == wanted,
            )
        except _Stale:
            self._lookup, self._rejected_identity = None, lookup.identity
            raise

    def _current_header(self) -> Header | None:
        """The header layout of the file now (None when it cannot be read as one: the whole read says why)."""
        try:
            with self._open() as binary:
                header, _records = self._reader.records(binary, NoHash())
        except SourceError:
            return None
        return header

    # ------------------------------------------------------------------------------------------
    # Keeping the index current

    def _current_index_locked(self) -> PersonIndex:
        """The index of the file as it is now: the one kept if still valid, else a new one (the caller holds the lock)."""
        index = self._index
        if index is not None and self._still_valid(index):
            return index
        return self._replace_index_locked(index)

    def _replace_index_locked(self, old: PersonIndex | None) -> PersonIndex:
        """A new index of the file in place of `old` (no longer valid, or None): `old` extended by appended rows, else built."""
        extended = self._extended_index(old) if old is not None else None
        index = extended if extended is not None else self._build_index()
        self._index = index
        if self._saver is not None and not index.racy_until_ns:
            self._saver.submit(index)
        return index

    def _still_valid(self, index: PersonIndex) -> bool:
        try:
            identity = _identity(os.stat(self._path))
        except OSError:
            return False
        if identity != index.identity:
            return False
        if not index.racy_until_ns:
            return True
        checked_at = time.time_ns()
        with self._open() as binary:
            try:
                digest = hashlib.file_digest(binary, "sha256").digest()
            except OSError as exc:
                raise SourceError(f"cannot read the consent CSV file {self._path} ({type(exc).__name__})") from None
        if digest != index.digest:
            return False
        if checked_at > index.racy_until_ns:
            index.racy_until_ns = 0  # any later write moves mtime/ctime past what the index holds
            if self._saver is not None:
                self._saver.submit(index)
        return True

    def _build_index(self) -> PersonIndex:
        started = time.time_ns()
        hasher = hashlib.sha256()
        with self._open() as binary:
            before = _identity(os.fstat(binary.fileno()))
            modified = max(before[3], before[4])
            racy_until = modified + RACY_WINDOW_NS if modified + RACY_WINDOW_NS >= started else 0
            header, records = self._reader.records(binary, hasher)
            index = index_records(header, records, identity=before, digest=hasher.digest, racy_until_ns=racy_until)
            after = _identity(os.fstat(binary.fileno()))
        if after != before:
            raise SourceError(f"the consent CSV file {self._path} changed while it was being read")
        return index

    def _extended_index(self, old: PersonIndex) -> PersonIndex | None:
        """The index of a file that is `old`'s file with rows appended, from reading only the new rows; else None.

        The file must begin with exactly the bytes `old` was built from (their SHA-256 is `old.digest`),
        ending at a line end. The new rows are parsed as a whole read parses them, and added to copies of
        `old`'s tables (`old` stays as it was: the caller may still diff against it). None - build the
        index afresh - when the file does not begin so, when a new row's record id may repeat another's
        (its 64-bit hash is already known), or when anything in the new rows would fail a read.
        """
        started = time.time_ns()
        size = old.identity[2]
        hasher = hashlib.sha256()
        try:
            with self._open() as binary:
                before = _identity(os.fstat(binary.fileno()))
                if before[2] < size:
                    return None
                remaining, last = size, b"\n"
                while remaining:
                    chunk = binary.read(min(CHUNK, remaining))
                    if not chunk:
                        return None
                    hasher.update(chunk)
                    remaining -= len(chunk)
                    last = chunk[-1:]
                if hasher.digest() != old.digest or last != b"\n":
                    return None
                feed = LineFeed(self._reader, binary, hasher, bom=False)
                records = self._reader.data(csv.reader(feed, strict=True), feed, old.header.width, binary)
                index = appended(old, records)
                after = _identity(os.fstat(binary.fileno()))
        except SourceError:
            return None  # the full read names what is wrong, and where
        if index is None or after != before:
            return None
        modified = max(before[3], before[4])
        index.identity = before
        index.digest = hasher.digest()
        index.racy_until_ns = modified + RACY_WINDOW_NS if modified + RACY_WINDOW_NS >= started else 0
        return index

    @contextmanager
    def _open(self) -> Iterator[BufferedReader]:
        try:
            binary = self._path.open("rb")
        except FileNotFoundError:
            raise SourceError(f"the consent CSV file does not exist: {self._path}") from None
        except OSError as exc:
            raise SourceError(f"cannot open the consent CSV file {self._path} ({type(exc).__name__})") from None
        with binary:
            yield binary


def _identity(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
