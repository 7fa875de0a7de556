"""Reads consent records from a CSV export of the consent form, keeping only the contract's columns.

The file is UTF-8 (a byte order mark is allowed) with a header row and RFC 4180 quoting. Each row
is cut down to the mapped columns the moment the csv module has split it, so no other column
(names, addresses, notes, ...) reaches anything else. Rows are streamed.

A read makes two passes: the first checks the structure and counts record ids (so every
occurrence of a duplicated id can be quarantined, including the first), the second parses and
yields. Both hash the file's bytes; if they differ the file changed mid-read and the read fails.
A file that cannot be read as a whole (missing, not UTF-8, a required column missing from the
header, malformed quoting, a row with the wrong number of fields) raises `SourceError` naming the
line, never a cell's content. Record ids are compared without surrounding whitespace.

Change detection: the watermark is the SHA-256 of the file's content; the same hash means nobody
changed, a different one means "full reconcile" (a CSV cannot say whose rows changed).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from io import BufferedReader
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from flagsync.core.model import SourceItem, is_valid_person_id
from flagsync.core.records import OPTIONAL_COLUMNS, normalize_text, parse_record, resolve_column_map
from flagsync.errors import ConfigError, SourceError
from flagsync.ports import Changes

_DEFAULT_ZONE = "Europe/London"
_WATERMARK_PREFIX = "sha256:"


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


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
        self._columns = resolve_column_map(columns)
        self._zone = zone if zone is not None else ZoneInfo(_DEFAULT_ZONE)

    # ------------------------------------------------------------------------------------------
    # ConsentSource

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        """Every record, streamed; raises SourceError when the file cannot be read as a whole."""
        return self._read(now, person_id=None)

    def read_person(self, person_id: str, now: datetime) -> Iterator[SourceItem]:
        """Every record naming this person id (the whole file is read to find them)."""
        if not is_valid_person_id(person_id):
            return iter(())  # no record can name a malformed id
        return self._read(now, person_id=person_id)

    def changes_since(self, watermark: str | None) -> Changes:
        """Nobody when the file's hash equals `watermark`; otherwise "full reconcile"."""
        with self._open() as binary:
            try:
                digest = hashlib.file_digest(binary, "sha256").hexdigest()
            except OSError as exc:
                raise SourceError(f"cannot read the consent CSV file {self._path} ({type(exc).__name__})") from None
        current = _WATERMARK_PREFIX + digest
        if watermark == current:
            return Changes(person_ids=frozenset(), watermark=current)
        return Changes(person_ids=None, watermark=current)

    def describe(self) -> str:
        return f"csv file {self._path}"

    # ------------------------------------------------------------------------------------------
    # Reading

    def _read(self, now: datetime, person_id: str | None) -> Iterator[SourceItem]:
        counts: Counter[str] = Counter()
        first = hashlib.sha256()
        for row in self._rows(first, only=("record_id",)):
            record_id = normalize_text(row["record_id"])
            if record_id is not None:
                counts[record_id] += 1
        second = hashlib.sha256()
        for row in self._rows(second, only=None):
            record_id = normalize_text(row["record_id"])
            item = parse_record(row, now=now, zone=self._zone, duplicate=record_id is not None and counts[record_id] > 1)
            if person_id is None or item.person_id == person_id:
                yield item
        if first.digest() != second.digest():
            raise SourceError(f"the consent CSV file {self._path} changed while it was being read")

    def _rows(self, hasher: _Hasher, only: tuple[str, ...] | None) -> Iterator[dict[str, str]]:
        """The file's records as {contract column: cell}, holding only mapped (or `only`) columns."""
        with self._open() as binary:
            reader = csv.reader(self._lines(binary, hasher), strict=True)
            try:
                header = next(reader, None)
                if header is None:
                    raise SourceError(f"the consent CSV file {self._path} is empty (no header row)")
                index = self._index(header)
                if only is not None:
                    index = {name: position for name, position in index.items() if name in only}
                width = len(header)
                for fields in reader:
                    if not fields:
                        continue  # a blank line
                    if len(fields) != width:
                        raise SourceError(
                            f"the consent CSV file {self._path} has {len(fields)} fields on line {reader.line_num}"
                            f" where the header has {width}"
                        )
                    yield {name: fields[position] for name, position in index.items()}
            except csv.Error:
                raise SourceError(f"the consent CSV file {self._path} is malformed at line {reader.line_num}") from None

    def _lines(self, binary: Iterable[bytes], hasher: _Hasher) -> Iterator[str]:
        """Decode line by line, so a decoding error names its line; feed every byte to `hasher`."""
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
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

    def _index(self, header: list[str]) -> dict[str, int]:
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
