"""Reads consent records from a CSV export of the consent form, keeping only the contract's columns.

The file is UTF-8 (a byte order mark is allowed) with a header row and RFC 4180 quoting. Each row
is cut down to the mapped columns the moment the csv module has split it, so no other column
(names, addresses, notes, ...) reaches anything else. Rows are streamed.

A whole read makes two passes: the first checks the structure and finds repeated record ids (so
every occurrence of a duplicated id can be quarantined, including the first), the second parses
and yields. Both hash the file's bytes; if they differ the file changed mid-read and the read
fails. A file that cannot be read as a whole (missing, not UTF-8, a required column missing from
the header, malformed quoting, a row with the wrong number of fields, a field longer than
`FIELD_LIMIT`) raises `SourceError` naming the line (and for a long field its column index),
never a cell's content. Record ids are compared without surrounding whitespace.

Field size: Python's csv module refuses fields over 128 KiB by default, which a legal export (a
long `notes` column) can exceed. Its limit is process-global (`csv.field_size_limit`); this module
sets it to `FIELD_LIMIT` (16 MiB) when imported, and every read sets it again if something else
changed it. A field above the limit fails the read.

Person reads (`read_person`) go through a per-file index instead of reading the whole file. The
first person read of a file version reads it once and keeps, per data row, its byte offset (8
bytes), the next row of the same person (4) and whether its record id is repeated in the file (1);
per person its id in a compact table (the id's length plus about 20 bytes) and its first row (4):
about 45 bytes a row when each person has one row. Finding repeated record ids needs a record id
table while the index is built (about the id's length plus 25 bytes a row), dropped afterwards.
A person's rows are then read at their offsets and parsed exactly as a whole read parses them
(same header layout, same checks, same parser), and only those whose parsed person id is the one
asked for are returned.

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
index and, in the same pass, each person's digest (`flagsync.core.digests`: the sum of a 64-bit hash
of each of their rows' contract values and duplicate mark; 8 bytes a person beside the index's
~45 bytes a row, and 8 bytes a row of record-id hashes). A file that only gained rows at its end (it
begins with exactly the bytes the index was built from: their SHA-256 matches) is not read again:
only the new rows are parsed, into copies of the index's tables, unless a new row's record id hash
is already known (it may repeat a record id, which changes who is uncertain), in which case the
whole file is read. The people whose digests differ from those of the version the caller's watermark
names are the people who changed: a row added, edited, deleted or moved to or from them, and people
who appeared or whose rows all went (their ids are still in the previous version's index, so they
are named too and their flag goes in a person sync). The previous version is kept only while the
caller's watermark still names it (at most two versions at once). "Full reconcile" (`person_ids`
None) only when this process does not hold the version the watermark names: the first poll, or a
watermark written by another process. What this cannot see: a change to a column flagsync does
not read (it changes nothing flagsync decides), and two different versions with the same 64-bit
digest sum for a person (a collision).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from io import BufferedReader
from itertools import compress
from operator import itemgetter
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from flagsync.core.digests import DIGEST_MASK, PersonDigests
from flagsync.core.keytable import KeyTable
from flagsync.core.model import CONTRACT_COLUMNS, SourceItem, is_valid_person_id
from flagsync.core.records import OPTIONAL_COLUMNS, RowParser, column_map, normalize_person_id, normalize_text
from flagsync.errors import ConfigError, SourceError
from flagsync.ports import Changes

_DEFAULT_ZONE = "Europe/London"
_WATERMARK_PREFIX = "sha256:"

#: The longest field (in characters) a consent CSV may hold; longer fails the read.
FIELD_LIMIT = 16 * 1024 * 1024

#: A file modified this shortly before its index was built is checked by content hash as well.
RACY_WINDOW_NS = 2_000_000_000

_FIELD_LIMIT_MESSAGE = "field larger than field limit"
# Added to a person's digest for each of their rows whose record id is repeated in the file.
_REPEATED_MARK = 0x9E37_79B9_7F4A_7C15
_CHUNK = 1 << 20


def _apply_field_limit() -> None:
    """Set csv's process-global field size limit to FIELD_LIMIT (if something changed it since)."""
    if csv.field_size_limit() != FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)


_apply_field_limit()


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


class _NoHash:
    def update(self, data: bytes, /) -> None:
        """Hash nothing (rows read at an offset through the index)."""


@dataclass(frozen=True, slots=True)
class _Header:
    """The header as found: its width and, in contract order, the position of each contract column."""

    width: int
    positions: tuple[int, ...]  # `width` for an absent optional column (an empty cell is appended to each row)

    def values(self, fields: list[str]) -> tuple[str, ...]:
        """The contract values of a row, in contract order (an absent optional column reads as empty)."""
        fields.append("")
        picked: tuple[str, ...] = itemgetter(*self.positions)(fields)
        return picked


@dataclass(slots=True)
class _PersonIndex:
    """Where each person's rows are in one version of the file (see the module docstring)."""

    identity: tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
    digest: bytes
    header: _Header
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


class _Stale(Exception):
    """Internal: the index no longer describes the file."""


class CsvConsentSource:
    """A `ConsentSource` over a CSV file.

    `columns` maps contract names to header names (identity by default; a header name is matched
    exactly, else case-insensitively); `zone` is the zone of naive timestamps (Europe/London by
    default). Nothing is opened until a method is called. Raises ConfigError for an unknown
    contract name in `columns`.
    """

    def __init__(self, path: Path, columns: Mapping[str, str] | None = None, zone: ZoneInfo | None = None) -> None:
        if not str(path).strip():
            raise ConfigError("source.path must name the consent CSV file")
        self._path = Path(path)
        self._columns = column_map(columns)
        self._zone = zone if zone is not None else ZoneInfo(_DEFAULT_ZONE)
        self._index: _PersonIndex | None = None
        self._index_lock = threading.Lock()
        # Change detection: the version a caller's watermark names, while it still differs from the current one,
        # and the last diff worked out (so a caller retrying the same watermark does not pay for it again).
        self._retained: _PersonIndex | None = None
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

    # ------------------------------------------------------------------------------------------
    # Whole reads

    def _read_all(self, now: datetime) -> Iterator[SourceItem]:
        _apply_field_limit()
        first = hashlib.sha256()
        with self._open() as binary:
            header, records = self._records(binary, first)
            record_id_at = header.positions[0]
            ids = KeyTable()
            counts = bytearray()
            per_row = array("i")
            for _offset, fields in records:
                per_row.append(_count(ids, counts, normalize_text(fields[record_id_at])))
            del ids
        repeated = bytes(1 if number >= 0 and counts[number] > 1 else 0 for number in per_row)
        del per_row, counts
        second = hashlib.sha256()
        parse = RowParser(now=now, zone=self._zone).parse
        with self._open() as binary:
            header, records = self._records(binary, second)
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
        _apply_field_limit()
        for _ in range(2):
            try:
                return self._read_indexed(person_id, now, self._current_index())
            except _Stale:
                with self._index_lock:
                    self._index = None
        raise SourceError(f"the consent CSV file {self._path} changed while it was being read")

    def _read_indexed(self, person_id: str, now: datetime, index: _PersonIndex) -> list[SourceItem]:
        rows = index.rows(person_id)
        if not rows:
            return []
        parse = RowParser(now=now, zone=self._zone).parse
        items: list[SourceItem] = []
        with self._open() as binary:
            if _identity(os.fstat(binary.fileno())) != index.identity:
                raise _Stale
            for row in rows:
                binary.seek(index.offsets[row])
                reader = csv.reader(self._lines(binary, _NoHash(), bom=False), strict=True)
                try:
                    fields = next(reader, None)
                except csv.Error:
                    raise _Stale from None
                if fields is None or len(fields) != index.header.width:
                    raise _Stale
                item = parse(index.header.values(fields), index.repeated[row] == 1)
                if item.person_id != person_id:
                    raise _Stale
                items.append(item)
        return items

    def _current_index(self) -> _PersonIndex:
        """The index of the file as it is now: the one kept if still valid, else a new one."""
        with self._index_lock:
            return self._current_index_locked()

    def _current_index_locked(self) -> _PersonIndex:
        index = self._index
        if index is not None and self._still_valid(index):
            return index
        extended = self._extended_index(index) if index is not None else None
        index = extended if extended is not None else self._build_index()
        self._index = index
        return index

    def _still_valid(self, index: _PersonIndex) -> bool:
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
        return True

    def _build_index(self) -> _PersonIndex:
        started = time.time_ns()
        hasher = hashlib.sha256()
        with self._open() as binary:
            before = _identity(os.fstat(binary.fileno()))
            header, records = self._records(binary, hasher)
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
                per_row.append(_count(ids, counts, record_id))
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
            after = _identity(os.fstat(binary.fileno()))
        if after != before:
            raise SourceError(f"the consent CSV file {self._path} changed while it was being read")
        del ids, last_row
        repeated = bytearray(1 if number >= 0 and counts[number] > 1 else 0 for number in per_row)
        # A row's duplicate mark is part of what decides its person: it goes into their digest too.
        for row in compress(range(len(repeated)), repeated):
            number = person_of_row[row]
            if number >= 0:
                digests[number] = (digests[number] + _REPEATED_MARK) & DIGEST_MASK
        del person_of_row
        modified = max(before[3], before[4])
        racy_until = modified + RACY_WINDOW_NS if modified + RACY_WINDOW_NS >= started else 0
        return _PersonIndex(
            identity=before,
            digest=hasher.digest(),
            header=header,
            people=people,
            first_row=first_row,
            next_row=next_row,
            offsets=offsets,
            repeated=repeated,
            digests=digests,
            record_hashes=array("Q", sorted(record_hashes)),
            racy_until_ns=racy_until,
        )

    def _extended_index(self, old: _PersonIndex) -> _PersonIndex | None:
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
                    chunk = binary.read(min(_CHUNK, remaining))
                    if not chunk:
                        return None
                    hasher.update(chunk)
                    remaining -= len(chunk)
                    last = chunk[-1:]
                if hasher.digest() != old.digest or last != b"\n":
                    return None
                feed = _LineFeed(self, binary, hasher, bom=False)
                records = self._data(csv.reader(feed, strict=True), feed, old.header.width, binary)
                index = self._appended(old, records)
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

    def _appended(self, old: _PersonIndex, records: Iterator[tuple[int, list[str]]]) -> _PersonIndex | None:
        """Copies of `old`'s tables with `records` (appended rows) added; None when a record id may repeat."""
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
        return _PersonIndex(
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

    # ------------------------------------------------------------------------------------------
    # Records

    def _records(self, binary: BufferedReader, hasher: _Hasher) -> tuple[_Header, Iterator[tuple[int, list[str]]]]:
        """The header layout, and the data records as (byte offset where the record starts, fields).

        Every record has the header's width; blank lines are skipped. Structural faults raise
        SourceError naming the line.
        """
        feed = _LineFeed(self, binary, hasher)
        reader = csv.reader(feed, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise self._malformed(exc, reader.line_num, 0, binary) from None
        if header is None:
            raise SourceError(f"the consent CSV file {self._path} is empty (no header row)")
        layout = self._header(header)
        return layout, self._data(reader, feed, layout.width, binary)

    def _data(
        self, reader: Iterator[list[str]], feed: _LineFeed, width: int, binary: BufferedReader
    ) -> Iterator[tuple[int, list[str]]]:
        line_num = getattr(reader, "line_num", 0)
        while True:
            start = feed.consumed
            try:
                fields = next(reader, None)
            except csv.Error as exc:
                raise self._malformed(exc, getattr(reader, "line_num", line_num), start, binary) from None
            if fields is None:
                return
            if not fields:
                continue  # a blank line
            if len(fields) != width:
                raise SourceError(
                    f"the consent CSV file {self._path} has {len(fields)} fields on line {getattr(reader, 'line_num', 0)}"
                    f" where the header has {width}"
                )
            yield start, fields

    def _malformed(self, exc: csv.Error, line: int, start: int, binary: BufferedReader) -> SourceError:
        if _FIELD_LIMIT_MESSAGE in str(exc):
            column = _long_field_column(self._text_from(binary, start), FIELD_LIMIT)
            where = f"column index {column}" if column is not None else "a column"
            return SourceError(
                f"the consent CSV file {self._path} has a field longer than {FIELD_LIMIT:,} characters in {where} at line {line}"
            )
        return SourceError(f"the consent CSV file {self._path} is malformed at line {line}")

    def _text_from(self, binary: BufferedReader, start: int) -> Iterator[str]:
        """The file's text from byte `start` on, in chunks (for finding an overlong field; never kept)."""
        decoder = codecs.getincrementaldecoder("utf-8-sig" if start == 0 else "utf-8")(errors="replace")
        binary.seek(start)
        while chunk := binary.read(_CHUNK):
            yield decoder.decode(chunk)

    def _lines(self, binary: Iterable[bytes], hasher: _Hasher, *, bom: bool = True) -> Iterator[str]:
        """Decode line by line, so a decoding error names its line; feed every byte to `hasher`."""
        decoder = codecs.getincrementaldecoder("utf-8-sig" if bom else "utf-8")(errors="strict")
        number = 0
        try:
            for raw in binary:
                number += 1
                hasher.update(raw)
                yield decoder.decode(raw)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise SourceError(f"the consent CSV file {self._path} is not valid UTF-8 (line {max(number, 1)})") from None
        except OSError as exc:
            raise SourceError(f"cannot read the consent CSV file {self._path} ({type(exc).__name__})") from None

    def _header(self, header: list[str]) -> _Header:
        names = [name.strip() for name in header]
        index: dict[str, int] = {}
        for contract, wanted in self._columns.items():
            positions = [i for i, name in enumerate(names) if name == wanted]
            if not positions:
                positions = [i for i, name in enumerate(names) if name.lower() == wanted.lower()]
            if len(positions) > 1:
                raise SourceError(f"column {wanted!r} appears more than once in the header of the consent CSV file {self._path}")
            if positions:
                index[contract] = positions[0]
            elif contract not in OPTIONAL_COLUMNS:
                raise SourceError(
                    f"column {wanted!r} (for {contract}) missing from the header of the consent CSV file {self._path}"
                )
        width = len(header)
        return _Header(width=width, positions=tuple(index.get(name, width) for name in CONTRACT_COLUMNS))

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


class _LineFeed:
    """The decoded lines of a file for csv.reader, counting the bytes handed over (`consumed`)."""

    __slots__ = ("_lines", "consumed")

    def __init__(self, source: CsvConsentSource, binary: BufferedReader, hasher: _Hasher, *, bom: bool = True) -> None:
        self.consumed = binary.tell()
        self._lines = source._lines(self._counted(binary), hasher, bom=bom)

    def _counted(self, binary: BufferedReader) -> Iterator[bytes]:
        for raw in binary:
            self.consumed += len(raw)
            yield raw

    def __iter__(self) -> Iterator[str]:
        return self._lines

    def __next__(self) -> str:
        return next(self._lines)


def _identity(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _count(ids: KeyTable, counts: bytearray, record_id: str | None) -> int:
    """Count one occurrence of `record_id` (saturating at 2); its number, or -1 for an absent id."""
    if record_id is None:
        return -1
    number, added = ids.add(record_id)
    if added:
        counts.append(1)
    elif counts[number] == 1:
        counts[number] = 2
    return number


def _long_field_column(chunks: Iterator[str], limit: int) -> int | None:  # noqa: PLR0912 - a small state machine
    """The index of the first field longer than `limit` characters in the CSV record the text starts with.

    Follows the csv module's default dialect (comma, double quote, doubled quotes inside quotes).
    None if the record ends without one (the csv module would not have stopped there). Reads only
    what it needs, a chunk at a time, and keeps no field.
    """
    column, length = 0, 0
    state = "start"  # start | bare | quoted | quote (a quote seen inside a quoted field)
    for chunk in chunks:
        at, size = 0, len(chunk)
        while at < size:
            if state == "start":
                if chunk[at] == '"':
                    state, at = "quoted", at + 1
                    continue
                state = "bare"
            if state == "bare":
                ends = [i for i in (chunk.find(",", at), chunk.find("\n", at), chunk.find("\r", at)) if i >= 0]
                end = min(ends) if ends else size
                length += end - at
                if length > limit:
                    return column
                if end == size:
                    at = size
                    continue
                if chunk[end] != ",":
                    return None  # the record ended
                column, length, state, at = column + 1, 0, "start", end + 1
            elif state == "quoted":
                end = chunk.find('"', at)
                length += (size if end < 0 else end) - at
                if length > limit:
                    return column
                at, state = (size, "quoted") if end < 0 else (end + 1, "quote")
            elif chunk[at] == '"':
                length, state, at = length + 1, "quoted", at + 1
                if length > limit:
                    return column
            elif chunk[at] == ",":
                column, length, state, at = column + 1, 0, "start", at + 1
            else:
                return None
    return None
